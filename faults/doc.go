// Package faults holds tests that break dormancy's real processes and
// check what is left: workers killed mid-task, Redis and Postgres going
// away under load, Resend failing in every way it can, a thousand attempts
// racing on one account, replicas of the worker and the scheduler running
// side by side.
//
// The tests build cmd/dormancy once per run and start `dormancy worker`
// and `dormancy scheduler` as subprocesses against a database of their own
// and a Redis DB of their own (or a private redis-server where the test
// restarts it), with Resend faked in the test process. All traffic stays
// on 127.0.0.1. Run them with
//
//	go test -count=1 ./faults
//
// SCALING.md explains what the tests guarantee and what they do not.
package faults
