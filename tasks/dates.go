package tasks

import (
	"encoding/json"
	"time"

	"github.com/dormancy/dormancy/policy"
)

// DateFields are the directory's time fields that may be given as a date
// alone ("2026-04-01"), in the API as in an import file: the start of that
// day in the company's time zone (policy.StartOfDate). Directories often
// know no more than the date an employee joined or last came in.
var DateFields = []string{"created_at", "last_login_at"}

// ResolveDates rewrites each of DateFields that the JSON object data gives
// as a date alone into the RFC 3339 instant the date begins at in the
// zone that zone returns, which is asked only when there is such a date.
// Anything else, including JSON that does not parse, is left as it is for
// the strict decoder to judge.
func ResolveDates(data []byte, zone func() (*time.Location, error)) ([]byte, error) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return data, nil
	}
	var loc *time.Location
	for _, name := range DateFields {
		var s string
		if raw, ok := obj[name]; !ok || json.Unmarshal(raw, &s) != nil || len(s) != len(time.DateOnly) {
			continue
		}
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			continue
		}
		if loc == nil {
			if loc, err = zone(); err != nil {
				return nil, err
			}
		}
		obj[name], _ = json.Marshal(policy.StartOfDate(d.Year(), d.Month(), d.Day(), loc).Format(time.RFC3339))
	}
	if loc == nil {
		return data, nil
	}
	return json.Marshal(obj)
}
