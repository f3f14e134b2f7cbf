// Command simplerpc pokes and measures simplerpc servers from a shell.
//
// Subcommands:
//
//	simplerpc serve  --addr 127.0.0.1:30000 [--addr ws://127.0.0.1:8080/rpc] --size 256
//	    A demo server: opcode 0 echoes the object back to its sender on
//	    opcode 0, opcode 1 sends it to every connection on opcode 1,
//	    opcode 2 {"to": N, "data": {...}} relays data to net id N, a call
//	    on opcode 3 answers the caller's net id and node. With --cluster
//	    nats://HOST:PORT|embedded --node NAME, across a cluster of them.
//	simplerpc call   --addr 127.0.0.1:30000 OPCODE '{"json":"object"}'
//	    Sends one frame and prints the answer (the first frame back on its
//	    opcode) or the failure, as one JSON line.
//	simplerpc listen --addr 127.0.0.1:30000 [--all] [--count N] [--send 'OPCODE JSON']
//	    Prints every frame received as a JSON line.
//	simplerpc bench  --addr 127.0.0.1:30000 --conns 1000 --duration 10s
//	    A load generator on the engine's client: throughput and latency
//	    percentiles of echoes, of any application's frames or calls (--op,
//	    --payload-file, --call), closed loop or open at --rate, or with
//	    --broadcast of send-to-all.
//	simplerpc completion bash|zsh|fish|powershell
//	    Prints a shell completion script.
//
// Exit status: 0 on success, 1 when the operation or the remote side failed
// (a failure frame, a time-out, a refused or lost connection), 2 for a usage
// error (an unknown subcommand or flag, a bad argument or address, a frame
// larger than the server's message size). The tool uses only the
// library's public API; see docs/CLI.md for a session with each subcommand.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// main runs the command line and exits with its status: the only exit.
func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal asks the subcommand to stop cleanly; a second one
	// kills the process as usual.
	context.AfterFunc(ctx, stop)
	args := os.Args[1:]
	// The token given on the command line moves to the environment, out of
	// os.Args, which the profiles serve (/debug/pprof/cmdline).
	if kept, token, found := hideAuthToken(os.Args); found {
		os.Args = kept
		if err := os.Setenv(envAuthToken, token); err != nil {
			fmt.Fprintln(os.Stderr, "simplerpc:", err)
			os.Exit(exitFailure)
		}
	}
	err := run(ctx, args, os.Stdout, os.Stderr)
	stop()
	os.Exit(report(os.Stderr, err))
}

// usageError marks an error as the user's: a bad flag, argument or
// subcommand. It exits with status 2. cmd is the command line that failed
// ("simplerpc call"), for the hint to its help.
type usageError struct {
	err error
	cmd string
}

// Error returns the message of the underlying error.
func (e usageError) Error() string { return e.err.Error() }

// Unwrap returns the underlying error.
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usage error.
func usagef(format string, args ...any) error {
	return usageError{err: fmt.Errorf(format, args...)}
}

// report prints err to w and returns the process's exit status.
func report(w io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(w, "simplerpc:", err)
	var ue usageError
	if errors.As(err, &ue) {
		cmd := ue.cmd
		if cmd == "" {
			cmd = "simplerpc"
		}
		fmt.Fprintf(w, "Run '%s --help' for usage.\n", cmd)
		return exitUsage
	}
	return exitFailure
}

// run executes the command line args (without the program name). ctx ends
// on SIGINT or SIGTERM. Errors that come from cobra before a subcommand
// starts (unknown subcommand or flag, wrong number of arguments) are usage
// errors.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	started := false
	root := newRootCmd(stdout, stderr, &started)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return nil
	}
	var ue usageError
	if errors.As(err, &ue) || !started {
		return usageError{err: err, cmd: cmd.CommandPath()}
	}
	return err
}

// newRootCmd builds the command tree. started is set when a subcommand's
// own code begins to run.
func newRootCmd(stdout, stderr io.Writer, started *bool) *cobra.Command {
	root := &cobra.Command{
		Use:   "simplerpc",
		Short: "Poke and measure simplerpc servers",
		Long: `simplerpc talks the simplerpc wire protocol (fixed-size frames of an opcode
and a JSON object) from the shell: a demo server, one-shot calls, a frame
listener and a load generator.

Exit status: 0 on success, 1 when the operation or the remote side failed,
2 for a usage error.`,
		Version:       version(),
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetVersionTemplate("simplerpc {{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err: err} })
	wrap := func(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			*started = true
			return fn(cmd, args)
		}
	}
	root.AddCommand(
		newServeCmd(wrap),
		newCallCmd(wrap),
		newListenCmd(wrap),
		newBenchCmd(wrap),
	)
	return root
}

// version returns the module version the binary was built from, as Go
// records it ("v1.2.3", a pseudo-version, or "(devel)" for a build
// from a work tree without one).
func version() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}

// runWrapper marks a subcommand as started before running it.
type runWrapper = func(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error

// defaultAddr is the address the subcommands use without --addr: the
// original simplerpc README's.
const defaultAddr = "127.0.0.1:30000"
