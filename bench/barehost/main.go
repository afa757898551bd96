// Command barehost is the floor the host API is measured against: an HTTP
// handler doing the same I/O as POST /api/v1/login-attempts and nothing
// else. It decodes the JSON, reads the account by company and login ID
// through the same driver and pool size as dormancy, enqueues one asynq
// task of the same size on the same queue, and answers JSON. No API key,
// no decision, no validation.
//
//	DATABASE_URL=… REDIS_URL=… ADDR=127.0.0.1:0 barehost
//
// It prints the address it listens on to stdout.
package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

type request struct {
	CompanyID string `json:"company_id"`
	LoginID   string `json:"login_id"`
	Method    string `json:"method"`
}

func main() {
	sqldb := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(os.Getenv("DATABASE_URL"))))
	sqldb.SetMaxOpenConns(postgres.DefaultMaxConns)
	sqldb.SetMaxIdleConns(postgres.DefaultMaxConns)
	db := bun.NewDB(sqldb, pgdialect.New())
	opt, err := asynq.ParseRedisURI(os.Getenv("REDIS_URL"))
	if err != nil {
		log.Fatal(err)
	}
	queue := asynq.NewClient(opt)
	http.HandleFunc("POST /api/v1/login-attempts", func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var acct struct {
			ID          int64
			LockState   string
			LastLoginAt sql.NullTime
		}
		if err := db.NewRaw(`SELECT id, lock_state, last_login_at FROM accounts WHERE company_id = ? AND login_id = ?`,
			req.CompanyID, req.LoginID).Scan(r.Context(), &acct); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		key := tasks.NewKey()
		payload, _ := json.Marshal(map[string]any{"company_id": req.CompanyID, "login_id": req.LoginID, "method": req.Method,
			"attempt_key": key, "at": time.Now(), "decided_at": time.Now(), "v": tasks.PayloadVersion})
		if _, err := queue.EnqueueContext(r.Context(), asynq.NewTask(tasks.TypeLoginAttempt, payload),
			asynq.Queue(tasks.QueueCritical), asynq.TaskID(tasks.LoginAttemptTaskID(key))); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"account_id": acct.ID, "attempt_key": key, "outcome": "allow"})
	})
	ln, err := net.Listen("tcp", os.Getenv("ADDR"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.Serve(ln))
}
