package main

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// devClock is the clock of `dormancy dev`: real time plus an offset that a
// person or a browser test moves, so "+91 days" or "23:59 tonight" can be
// tried without touching the system clock. Only the dev command creates
// one; every other process runs on time.Now.
type devClock struct {
	mu     sync.Mutex
	offset time.Duration
	real   func() time.Time
}

func newDevClock() *devClock { return &devClock{real: time.Now} }

// Now is the dev time.
func (c *devClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.real().Add(c.offset)
}

// Move applies a command: "+91d", "+25h", "+30m" move forward; "HH:MM"
// moves to the next such local time in loc ("23:59" is tonight); "reset"
// returns to real time. Time never moves backwards except by reset, so
// nothing in the database ends up in the future.
func (c *devClock) Move(cmd string, loc *time.Location) (time.Time, error) {
	cmd = strings.TrimSpace(cmd)
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.real().Add(c.offset)
	switch {
	case cmd == "reset":
		c.offset = 0
	case strings.HasPrefix(cmd, "+"):
		d, err := parseForward(cmd[1:])
		if err != nil {
			return now, err
		}
		c.offset += d
	case strings.Contains(cmd, ":"):
		hm, err := time.Parse("15:04", cmd)
		if err != nil {
			return now, fmt.Errorf("dev clock: want HH:MM, got %q", cmd)
		}
		l := now.In(loc)
		target := time.Date(l.Year(), l.Month(), l.Day(), hm.Hour(), hm.Minute(), 0, 0, loc)
		if !target.After(now) {
			target = time.Date(l.Year(), l.Month(), l.Day()+1, hm.Hour(), hm.Minute(), 0, 0, loc)
		}
		c.offset += target.Sub(now)
	default:
		return now, fmt.Errorf("dev clock: want +91d, +25h, +30m, HH:MM or reset, got %q", cmd)
	}
	return c.real().Add(c.offset), nil
}

func parseForward(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 3650 {
			return 0, fmt.Errorf("dev clock: bad day count %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("dev clock: bad duration %q", s)
	}
	return d, nil
}

var clockPage = template.Must(template.New("clock").Parse(`<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>dev clock</title>
<style>body{font-family:"Noto Sans CJK JP",sans-serif;margin:32px}code{font-size:1.3em}</style></head><body>
<h1>開発用の時計 (dev clock)</h1>
<p>現在の時刻: <code id="now">{{.Now}}</code></p>
{{with .Error}}<p style="color:#b71c1c">{{.}}</p>{{end}}
<form method="post" action="/dev/clock">
<input name="move" id="move" placeholder="+91d, +25h, 23:59, reset"> <button type="submit" id="apply">進める</button>
</form>
<p>
<form method="post" action="/dev/clock" style="display:inline"><input type="hidden" name="move" value="+91d"><button>+91日</button></form>
<form method="post" action="/dev/clock" style="display:inline"><input type="hidden" name="move" value="+25h"><button>+25時間</button></form>
<form method="post" action="/dev/clock" style="display:inline"><input type="hidden" name="move" value="23:59"><button>今夜 23:59</button></form>
<form method="post" action="/dev/clock" style="display:inline"><input type="hidden" name="move" value="reset"><button>リセット</button></form>
</p>
<p><a href="/login">デモのログイン画面へ</a></p>
</body></html>`))

// handler serves GET and POST /dev/clock: a page for people, JSON for
// scripts (send Accept: application/json).
func (c *devClock) handler(loc *time.Location) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var moveErr error
		if r.Method == http.MethodPost {
			_, moveErr = c.Move(r.FormValue("move"), loc)
		}
		now := c.Now().In(loc).Format("2006/01/02 15:04:05 MST")
		if strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			status, body := http.StatusOK, map[string]string{"now": c.Now().Format(time.RFC3339Nano), "local": now}
			if moveErr != nil {
				status, body = http.StatusBadRequest, map[string]string{"error": moveErr.Error()}
			}
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(body)
			return
		}
		if r.Method == http.MethodPost && moveErr == nil {
			http.Redirect(w, r, "/dev/clock", http.StatusSeeOther)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		data := struct{ Now, Error string }{Now: now}
		if moveErr != nil {
			w.WriteHeader(http.StatusBadRequest)
			data.Error = moveErr.Error()
		}
		clockPage.Execute(w, data)
	})
}
