package main

import (
	"errors"

	"github.com/hibiken/asynq"
)

// parseRedisURL reads REDIS_URL. For redis-sentinel:// asynq gives the
// URL's password to the Sentinels alone, so a master that needs one
// refuses every command; here the URL's password is the master's, and the
// Sentinels' too unless sentinelPassword says otherwise ("none" for
// Sentinels without a password).
func parseRedisURL(raw, sentinelPassword string) (asynq.RedisConnOpt, error) {
	opt, err := asynq.ParseRedisURI(raw)
	if err != nil {
		return nil, err
	}
	f, ok := opt.(asynq.RedisFailoverClientOpt)
	if !ok {
		if sentinelPassword != "" {
			return nil, errors.New("REDIS_SENTINEL_PASSWORD is set, but REDIS_URL does not name Sentinels (redis-sentinel://)")
		}
		return opt, nil
	}
	f.Password = f.SentinelPassword
	switch sentinelPassword {
	case "":
	case "none":
		f.SentinelPassword = ""
	default:
		f.SentinelPassword = sentinelPassword
	}
	return f, nil
}
