// Package policy holds dormancy's domain: the account and company state the
// lock decision needs, and the rules that turn them into a decision.
//
// Everything here is a pure function of its arguments. Nothing reads a clock,
// a database or the network, so every rule can be tested at its exact edge
// (89 days 23 hours, 23:59:59.999 local time, the day DST begins) and called
// from the host client, the worker and the scheduler with the same result.
package policy
