// Package bench measures dormancy against the machine's own limits. Every
// figure is printed beside a baseline measured in the same run on the same
// Postgres and Redis, because a shared 2-core machine is too noisy for
// absolute numbers to mean much. Run it with
//
//	go test -run '^$' -bench . -benchtime 1x ./bench
//
// BENCHMARKS.md records the results and how to read them.
package bench
