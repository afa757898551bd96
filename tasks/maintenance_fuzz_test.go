package tasks_test

import (
	"errors"
	"testing"
	"time"

	"github.com/dormancy/dormancy/tasks"
)

// Whatever a maintenance payload holds, it decodes into something every
// maintenance constructor accepts and that survives the round trip, or it
// is refused as an invalid payload; it never panics.
func FuzzDecodeMaintenance(f *testing.F) {
	f.Add([]byte(`{"period":"2026-11-26T03:00:00Z","batch_size":1000,"min_age_seconds":120}`))
	f.Add([]byte(`{"period":"2026-11-26T12:00:41.5+09:00"}`))
	f.Add([]byte(`{"period":202611260300}`))
	f.Add([]byte(`{"period":"10000-01-01T00:00:00Z","batch_size":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := tasks.DecodeMaintenance(data)
		if err != nil {
			if !errors.Is(err, tasks.ErrInvalidPayload) {
				t.Fatalf("error %v is not ErrInvalidPayload", err)
			}
			return
		}
		if b := p.Batch(); b < 1 || b > tasks.MaxMaintenanceBatch {
			t.Fatalf("batch %d accepted", b)
		}
		if age := p.MinAge(time.Hour); age < 0 {
			t.Fatalf("negative age %v accepted", age)
		}
		for _, typ := range tasks.MaintenanceTypes {
			task, err := tasks.NewMaintenanceTask(typ, p)
			if err != nil {
				t.Fatalf("decoded %+v but the %s constructor refuses it: %v", p, typ, err)
			}
			again, err := tasks.DecodeMaintenance(task.Payload())
			if err != nil {
				t.Fatalf("the constructor's payload does not decode: %v", err)
			}
			if want := p.Period.UTC().Truncate(time.Minute); !again.Period.Equal(want) || again.BatchSize != p.BatchSize || again.MinAgeSeconds != p.MinAgeSeconds {
				t.Fatalf("%+v became %+v", p, again)
			}
		}
	})
}
