package tasks_test

import (
	"testing"

	"github.com/dormancy/dormancy/internal/testenv"
)

// TestMain gives the package's tests their own Postgres database and Redis
// DB: the host client is tested against the real servers.
func TestMain(m *testing.M) { testenv.Main(m) }
