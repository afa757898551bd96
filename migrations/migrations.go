// Package migrations holds dormancy's Postgres schema as numbered SQL files,
// embedded so the binary migrates the database it runs against without any
// files beside it.
//
// Most files end in .tx.up.sql or .tx.down.sql so bun runs each inside one
// transaction: a migration is applied whole or not at all. The few that
// build indexes without blocking writes (CREATE INDEX CONCURRENTLY cannot
// run in a transaction) go without .tx, and each of their steps is safe
// to run again after a failure.
package migrations

import (
	"embed"

	"github.com/uptrace/bun/migrate"
)

//go:embed *.sql
var files embed.FS

// New returns the migration set for bun's migrator.
func New() (*migrate.Migrations, error) {
	m := migrate.NewMigrations()
	if err := m.Discover(files); err != nil {
		return nil, err
	}
	return m, nil
}
