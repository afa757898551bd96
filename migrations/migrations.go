// Package migrations holds dormancy's Postgres schema as numbered SQL files,
// embedded so the binary migrates the database it runs against without any
// files beside it.
//
// Each file ends in .tx.up.sql or .tx.down.sql so bun runs it inside one
// transaction: a migration is applied whole or not at all.
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
