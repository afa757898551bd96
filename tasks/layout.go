package tasks

import (
	"encoding/json"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// CriticalQueue is the queue of a company's login attempts and directory
// events when they are spread over n queues. asynq keeps every key of a
// queue in one Redis Cluster hash slot ("asynq:{critical-1}:…"), so one
// queue is one shard however large the cluster; n queues spread the
// busiest work over n shards.
//
// It is part of the host contract, since a host chooses the queue when it
// enqueues: for n ≤ 1 the queue is "critical" (the layout before queues
// were spread); otherwise it is "critical-" followed by the decimal value
// of FNV-1a (32 bits) of the company ID's UTF-8 bytes, modulo n. For
// example, "acme" with n = 3: FNV-1a is 0x45fd71af = 1174237615, and
// 1174237615 mod 3 = 1, so "critical-1". Order within a company never
// depends on the queue: the versions of directory events and the times of
// attempts keep it, so changing n is safe at any moment.
func CriticalQueue(companyID string, n int) string {
	if n <= 1 {
		return QueueCritical
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(companyID))
	return QueueCritical + "-" + strconv.FormatUint(uint64(h.Sum32()%uint32(n)), 10)
}

// MaxCriticalQueues bounds n: asynq's fetch asks each queue a worker
// serves in turn, so every queue served costs an idle worker a Redis round
// trip per poll.
const MaxCriticalQueues = 64

// ServedQueues are the queues a worker serves and their weights: the
// plain critical queue and critical-0 … critical-(m-1), each with
// critical's weight, so that a worker serves every layout a host may use
// with n ≤ m, and tasks queued under an older n are still served after n
// changes.
func ServedQueues(m int) map[string]int {
	qs := map[string]int{}
	for q, w := range Queues {
		qs[q] = w
	}
	for i := range max(m, 0) {
		qs[QueueCritical+"-"+strconv.Itoa(i)] = Queues[QueueCritical]
	}
	return qs
}

// IsCriticalQueue says whether q is critical or one of its spread
// queues.
func IsCriticalQueue(q string) bool {
	if q == QueueCritical {
		return true
	}
	n, ok := strings.CutPrefix(q, QueueCritical+"-")
	if !ok {
		return false
	}
	_, err := strconv.ParseUint(n, 10, 16)
	return err == nil
}

// Layout is where a process puts the tasks it enqueues and how long Redis
// keeps them once done. The zero value is the layout the constructors
// give: one critical queue, a day of retention.
type Layout struct {
	// CriticalQueues spreads login attempts and directory events over
	// this many queues (CriticalQueue); 0 or 1 keeps them on critical.
	CriticalQueues int
	Retention      TaskRetention
}

// TaskRetention is how long Redis keeps a completed task of each family.
// Postgres deduplicates login attempts (their attempt key is unique) and
// mail (its row's status), so Redis needs to keep a done task only as
// long as a repeated enqueue under the same task ID should be refused
// there instead of reaching Postgres. Zero keeps the constructor's day;
// KeepNone keeps nothing.
type TaskRetention struct {
	LoginAttempts time.Duration
	Emails        time.Duration
	Directory     time.Duration
}

// KeepNone as a TaskRetention field deletes a task from Redis as soon as
// it completes.
const KeepNone time.Duration = -1

// Options are the enqueue options that put t where the layout says: they
// override the constructor's queue and retention. Tasks of other types get
// none.
func (l Layout) Options(t *asynq.Task) []asynq.Option {
	var opts []asynq.Option
	var keep time.Duration
	switch typ := t.Type(); {
	case typ == TypeLoginAttempt || strings.HasPrefix(typ, "directory:"):
		// The queue is named even when it is the constructor's, so that an
		// Enqueuer wrapping asynq's knows it on a task ID conflict too. A
		// payload that does not decode goes to critical, where the worker
		// rejects it as it would anywhere.
		var p struct {
			CompanyID string `json:"company_id"`
		}
		q := QueueCritical
		if l.CriticalQueues > 1 && json.Unmarshal(t.Payload(), &p) == nil {
			q = CriticalQueue(p.CompanyID, l.CriticalQueues)
		}
		opts = append(opts, asynq.Queue(q))
		keep = l.Retention.Directory
		if typ == TypeLoginAttempt {
			keep = l.Retention.LoginAttempts
		}
	case strings.HasPrefix(typ, "email:"):
		opts = append(opts, asynq.Queue(QueueDefault))
		keep = l.Retention.Emails
	}
	switch {
	case keep == KeepNone:
		opts = append(opts, asynq.Retention(0))
	case keep > 0:
		opts = append(opts, asynq.Retention(keep))
	}
	return opts
}
