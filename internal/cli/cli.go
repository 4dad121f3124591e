// Package cli implements pith's command line: serve, api, content, worker,
// migrate and admin.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pith-project/pith/internal/auth"
	"github.com/pith-project/pith/internal/config"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/server"
	"github.com/pith-project/pith/internal/store"
)

// Execute runs the command line and returns the process exit code.
func Execute(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "pith:", err)
		return 1
	}
	return 0
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "pith",
		Short:         "pith: a Pulp 3 compatible repository manager in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		roleCommand("serve", "Run the API, the content app and task workers in one process", server.Roles{API: true, Content: true, Workers: true}, stderr),
		roleCommand("api", "Run only the REST API (scale-out on PostgreSQL)", server.Roles{API: true}, stderr),
		roleCommand("content", "Run only the content app (scale-out on PostgreSQL)", server.Roles{Content: true}, stderr),
		roleCommand("worker", "Run only task workers (scale-out on PostgreSQL)", server.Roles{Workers: true}, stderr),
		migrateCommand(stdout, stderr),
		adminCommand(stdout, stderr),
		&cobra.Command{
			Use: "version", Short: "Print the version",
			Run: func(cmd *cobra.Command, _ []string) {
				fmt.Fprintf(stdout, "pith (Pulp API core %s, file %s)\n", coreapi.CoreVersion, coreapi.FileVersion)
			},
		},
	)
	return root
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func roleCommand(use, short string, roles server.Roles, stderr io.Writer) *cobra.Command {
	var cfg config.Config
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs}
	cfg.Register(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := cfg.Load(cmd.Flags()); err != nil {
			return err
		}
		if !roles.Workers {
			cfg.Workers = 0
		}
		if (use == "api" || use == "content" || use == "worker") && cfg.DatabaseURL == "" {
			return fmt.Errorf("pith %s runs beside other processes and needs a shared PostgreSQL database (--database-url); for a single process use pith serve", use)
		}
		log := newLogger(&cfg, stderr)
		slog.SetDefault(log)
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		srv, err := server.New(ctx, &cfg, roles, log, func(pw string) {
			fmt.Fprintf(stderr, "\n  Generated password for user admin: %s\n  (shown once; change it with: pith admin reset-password)\n\n", pw)
		})
		if err != nil {
			return err
		}
		defer srv.Close()
		sigc := make(chan os.Signal, 2)
		signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(sigc)
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		var sig os.Signal
		select {
		case err := <-done:
			return err
		case sig = <-sigc:
		}
		// SIGTERM lets running tasks finish; SIGINT (or a second signal)
		// cancels them.
		cancelRunning := sig == syscall.SIGINT
		log.Info("shutting down", "signal", sig.String(), "cancel_running_tasks", cancelRunning)
		sctx, scancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer scancel()
		go func() {
			<-sigc
			log.Warn("second signal: canceling running tasks")
			scancel()
		}()
		serr := srv.Shutdown(sctx, cancelRunning)
		stop()
		if err := <-done; err != nil {
			return err
		}
		return serr
	}
	return cmd
}

func migrateCommand(stdout, stderr io.Writer) *cobra.Command {
	var cfg config.Config
	cmd := &cobra.Command{Use: "migrate", Short: "Apply database migrations and exit", Args: cobra.NoArgs}
	cfg.Register(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := cfg.Load(cmd.Flags()); err != nil {
			return err
		}
		s, err := store.Open(cmd.Context(), cfg.DatabaseURL, cfg.DataDir)
		if err != nil {
			return err
		}
		defer s.Close()
		names, err := s.Migrations(cmd.Context())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "database (%s) is at migration %s\n", s.Dialect(), names[len(names)-1])
		return nil
	}
	return cmd
}

func adminCommand(stdout, stderr io.Writer) *cobra.Command {
	admin := &cobra.Command{Use: "admin", Short: "Administrative commands"}
	var cfg config.Config
	var password string
	var random bool
	reset := &cobra.Command{
		Use:   "reset-password",
		Short: "Set the password of user admin (reads it from --password, PITH_ADMIN_PASSWORD or stdin; --random generates one)",
		Args:  cobra.NoArgs,
	}
	cfg.Register(reset.Flags())
	reset.Flags().StringVar(&password, "password", "", "the new password")
	reset.Flags().BoolVar(&random, "random", false, "generate a random password and print it")
	reset.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := cfg.Load(cmd.Flags()); err != nil {
			return err
		}
		switch {
		case random:
			password = auth.RandomPassword()
		case password == "" && os.Getenv("PITH_ADMIN_PASSWORD") != "":
			password = os.Getenv("PITH_ADMIN_PASSWORD")
		case password == "":
			b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
			if err != nil {
				return err
			}
			password = strings.TrimSpace(string(b))
		}
		if password == "" {
			return fmt.Errorf("no password given (use --password, PITH_ADMIN_PASSWORD, stdin or --random)")
		}
		s, err := store.Open(cmd.Context(), cfg.DatabaseURL, cfg.DataDir)
		if err != nil {
			return err
		}
		defer s.Close()
		if err := auth.SetPassword(cmd.Context(), s, "admin", password); err != nil {
			return err
		}
		if random {
			fmt.Fprintf(stdout, "New password for user admin: %s\n", password)
		} else {
			fmt.Fprintln(stdout, "Password for user admin updated.")
		}
		return nil
	}
	admin.AddCommand(reset)
	return admin
}
