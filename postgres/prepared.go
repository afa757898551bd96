package postgres

import (
	"context"
	"database/sql"
	"sync"
)

// prepared is a statement prepared once for the pool; database/sql
// prepares it again on each connection that runs it, so each connection
// parses and plans it once. For the few hot statements whose planning
// costs as much as running them; bun formats every other statement on the
// client.
type prepared struct {
	mu   sync.Mutex
	stmt *sql.Stmt
}

func (p *prepared) get(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stmt != nil {
		return p.stmt, nil
	}
	stmt, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	p.stmt = stmt
	return stmt, nil
}

func (p *prepared) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stmt != nil {
		_ = p.stmt.Close()
		p.stmt = nil
	}
}
