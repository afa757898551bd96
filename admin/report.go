package admin

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dormancy/dormancy/report"
)

// DefaultReportPeriod is the span of events a report counts unless asked
// otherwise: the 90 days of PCI DSS 8.2.6.
const DefaultReportPeriod = 90 * 24 * time.Hour

// apiReport streams a company's compliance report: JSON, or CSV when the
// client asks for text/csv (or ?format=csv). ?since= and ?until= (RFC 3339)
// bound the events the summary counts.
func (s *Server) apiReport(w http.ResponseWriter, r *http.Request) {
	companyID := r.PathValue("id")
	if _, err := authorize(r.Context(), companyID); err != nil {
		writeError(w, toAPIError(err))
		return
	}
	now := s.now()
	o := report.Options{Format: report.JSON, Now: now, Until: now}
	if f := r.URL.Query().Get("format"); f == "csv" || f == "" && strings.Contains(r.Header.Get("Accept"), "text/csv") {
		o.Format = report.CSV
	} else if f != "" && f != "json" {
		writeError(w, errField("format", "want json or csv"))
		return
	}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"until", &o.Until}, {"since", &o.Since}} {
		if v := r.URL.Query().Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeError(w, errField(p.name, "want an RFC 3339 time, such as 2026-09-01T00:00:00+09:00"))
				return
			}
			*p.to = t
		}
	}
	if o.Since.IsZero() {
		o.Since = o.Until.Add(-DefaultReportPeriod)
	}
	if !o.Since.Before(o.Until) {
		writeError(w, errField("since", "must be before until"))
		return
	}
	out := &startedWriter{w: w, start: func() {
		ct := "application/json; charset=utf-8"
		if o.Format == report.CSV {
			ct = "text/csv; charset=utf-8"
			w.Header().Set("Content-Disposition", `attachment; filename="dormancy-report-`+companyID+`-`+now.Format("20060102")+`.csv"`)
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
	}}
	if _, err := report.Write(r.Context(), s.store, companyID, out, o); err != nil {
		if !out.started {
			writeError(w, toAPIError(err))
			return
		}
		// The status is sent: the body ends short, which a client sees
		// as a truncated document.
		s.log.ErrorContext(r.Context(), "admin: report cut short", "company_id", companyID, "error", err.Error())
	}
}

// startedWriter sets the response's headers on the first write, so that a
// failure before anything was written can still answer with an error.
type startedWriter struct {
	w       http.ResponseWriter
	start   func()
	started bool
}

func (s *startedWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.started = true
		s.start()
	}
	return s.w.Write(p)
}

// apiConfirmSweep lets a sweep the guard held proceed at its next run; the
// acting administrator is recorded. A company without a hold is 404.
func (s *Server) apiConfirmSweep(w http.ResponseWriter, r *http.Request) (int, any, error) {
	companyID := r.PathValue("id")
	actor, err := authorize(r.Context(), companyID)
	if err != nil {
		return 0, nil, err
	}
	h, err := s.store.ConfirmSweep(r.Context(), companyID, fmt.Sprintf("account %d", actor.AccountID), s.now())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, h, nil
}
