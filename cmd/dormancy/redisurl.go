package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/hibiken/asynq"
)

// clusterScheme names a Redis Cluster in REDIS_URL. asynq.ParseRedisURI
// never returns a cluster option, and a cluster needs several seed nodes
// where a URL has one host, so the scheme takes a comma-separated list:
// redis-cluster://[:password@]host:port[,host:port...].
const clusterScheme = "redis-cluster://"

// parseRedisURL reads REDIS_URL. For redis-sentinel:// asynq gives the
// URL's password to the Sentinels alone, so a master that needs one
// refuses every command; here the URL's password is the master's, and the
// Sentinels' too unless sentinelPassword says otherwise ("none" for
// Sentinels without a password).
func parseRedisURL(raw, sentinelPassword string) (asynq.RedisConnOpt, error) {
	if strings.HasPrefix(raw, clusterScheme) {
		if sentinelPassword != "" {
			return nil, errors.New("REDIS_SENTINEL_PASSWORD is set, but REDIS_URL names a cluster (redis-cluster://), not Sentinels")
		}
		return parseClusterURL(raw)
	}
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

// parseClusterURL reads redis-cluster://[user:password@]host:port,...:
// the nodes are seeds, from which the client learns the rest. A cluster
// has only database 0, so a path naming another is refused.
func parseClusterURL(raw string) (asynq.RedisConnOpt, error) {
	rest := strings.TrimPrefix(raw, clusterScheme)
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		return nil, fmt.Errorf("redis-cluster:// takes no query or fragment, got %q", rest[i:])
	}
	var opt asynq.RedisClusterClientOpt
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		u, err := url.Parse("redis://" + rest[:i+1] + "x")
		if err != nil {
			return nil, errors.New("redis-cluster://: the user and password do not parse (escape reserved characters)")
		}
		opt.Username = u.User.Username()
		opt.Password, _ = u.User.Password()
		rest = rest[i+1:]
	}
	rest, db, _ := strings.Cut(rest, "/")
	if db != "" && db != "0" {
		return nil, fmt.Errorf("redis-cluster://: a cluster has only database 0, got /%s", db)
	}
	for _, a := range strings.Split(rest, ",") {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("redis-cluster://: want host:port,host:port..., got %q", a)
		}
		opt.Addrs = append(opt.Addrs, a)
	}
	return opt, nil
}
