package tasks_test

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// A host that only reports logins enqueues login:attempt; the worker
// decides and records it. (A host that must show the answer at once asks
// first with Client.Login.)
func ExampleNewLoginAttemptTask() {
	task, err := tasks.NewLoginAttemptTask(tasks.LoginAttempt{
		CompanyID: "acme", LoginID: "yamada@acme.example", Method: policy.MethodPassword,
		IP: "203.0.113.7", At: time.Now(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(task.Type())
	// Output: login:attempt
}

// A bad payload is refused before it reaches the queue, naming the field.
func ExampleNewLoginAttemptTask_refused() {
	_, err := tasks.NewLoginAttemptTask(tasks.LoginAttempt{CompanyID: "acme", LoginID: "yamada", Method: "telepathy", At: time.Now()})
	fmt.Println(err)
	// Output: tasks.NewLoginAttemptTask: method: unknown method "telepathy" (want password, verification_link, sso, passkey, remembered)
}

// A company's settings go to dormancy as a versioned upsert; a setting
// left out takes the manual's default.
func ExampleNewUpsertCompanyTask() {
	task, err := tasks.NewUpsertCompanyTask(tasks.Company{
		CompanyID: "acme", Version: 7, Name: "株式会社アクメ", InactivityDays: 90,
		FallbackContact: "情報システム部 内線 1234",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(task.Type())
	// Output: directory:upsert-company
}

// An administrator's unlock: the task ID is derived from the request, so a
// double click enqueues once.
func ExampleNewAccountUnlockTask() {
	p := tasks.AccountUnlock{CompanyID: "acme", ActorAccountID: 1, AccountIDs: []int64{42}, RequestID: "click-1", RequestedAt: time.Now()}
	task, err := tasks.NewAccountUnlockTask(p)
	if err != nil {
		fmt.Println(err)
		return
	}
	again := p
	again.RequestedAt = p.RequestedAt.Add(time.Second)
	fmt.Println(task.Type(), tasks.UnlockTaskID(p) == tasks.UnlockTaskID(again))
	// Output: account:unlock true
}

// A Go host asks before it lets a user in, shows the answer, and the
// attempt is recorded at the instant of that answer.
func ExampleClient_Login() {
	ctx := context.Background()
	store, err := postgres.Open(ctx, "postgres://postgres@127.0.0.1:5432/dormancy?sslmode=disable", 8)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	queue := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:6379"})
	defer queue.Close()
	client := tasks.NewClient(queue, store, time.Now)

	res, err := client.Login(ctx, tasks.LoginAttempt{CompanyID: "acme", LoginID: "yamada@acme.example", Method: policy.MethodPassword})
	if err != nil {
		// Fail closed: dormancy could not answer.
		return
	}
	switch {
	case res.Decision.Outcome == policy.OutcomeAllow:
		// start the session
	case res.Decision.Outcome.Locked():
		fmt.Println(res.Message) // the manual's lock message, administrators listed
	}
}
