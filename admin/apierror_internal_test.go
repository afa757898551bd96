package admin

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dormancy/dormancy/cluster"
)

// An enqueue that too few replicas confirmed is answered 503 with
// Retry-After, telling the caller to repeat the idempotent request, not
// 500 as if dormancy had failed.
func TestNotReplicatedIsUnavailableAndRetried(t *testing.T) {
	e := toAPIError(fmt.Errorf("tasks: enqueue account:unlock: %w: 0 of 1 replicas of 127.0.0.1:7000", cluster.ErrNotReplicated))
	if e.Status != http.StatusServiceUnavailable || e.Code != codeUnavailable {
		t.Fatalf("answer = %d %s, want 503 %s", e.Status, e.Code, codeUnavailable)
	}
	w := httptest.NewRecorder()
	writeError(w, e)
	if w.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
}
