package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

func openPostgres(ctx context.Context, url string) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	return &Store{db: db, wdb: db, dialect: &pgDialect{url: url}}, nil
}

type pgDialect struct {
	url string

	mu      sync.Mutex
	cancels []context.CancelFunc
}

func (*pgDialect) name() string { return "postgres" }

func (*pgDialect) regexOp(col, p string, ci bool) string {
	if ci {
		return col + " ~* " + p
	}
	return col + " ~ " + p
}

func (*pgDialect) isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// listen holds one dedicated connection per channel and forwards payloads.
// It reconnects after connection loss; missed notifications are covered by
// the listeners' periodic polling.
func (d *pgDialect) listen(ctx context.Context, channel string) (<-chan string, error) {
	ctx, cancel := context.WithCancel(ctx)
	d.mu.Lock()
	d.cancels = append(d.cancels, cancel)
	d.mu.Unlock()
	out := make(chan string, 64)
	connect := func() (*pgx.Conn, error) {
		c, err := pgx.Connect(ctx, d.url)
		if err != nil {
			return nil, err
		}
		if _, err := c.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
			c.Close(context.Background())
			return nil, err
		}
		return c, nil
	}
	conn, err := connect()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("store: listen %s: %w", channel, err)
	}
	go func() {
		defer close(out)
		for {
			n, err := conn.WaitForNotification(ctx)
			if err == nil {
				select {
				case out <- n.Payload:
				default: // a slow consumer polls anyway; never block the listener
				}
				continue
			}
			conn.Close(context.Background())
			if ctx.Err() != nil {
				return
			}
			slog.Warn("store: listen connection lost; reconnecting", "channel", channel, "err", err)
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				if conn, err = connect(); err == nil {
					break
				}
			}
		}
	}()
	return out, nil
}

func (*pgDialect) notify(ctx context.Context, q querier, channel, payload string) error {
	if _, err := q.ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		return fmt.Errorf("store: notify %s: %w", channel, err)
	}
	return nil
}

func (d *pgDialect) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.cancels {
		c()
	}
	d.cancels = nil
	return nil
}
