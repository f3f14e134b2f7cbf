// bench --broadcast: rounds of one send-to-all, timed per delivery and
// until every connection has it.
package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// onBroadcast handles a delivery on the event loop: it records its
// latency and ends the round with the last expected delivery.
func (b *benchRun) onBroadcast(c handler.Conn, data []byte) error {
	now := b.now()
	round, t, ok := stampOf(data)
	if !ok || round == 0 {
		b.errors.Add(1)
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if round != b.round || b.got[c.ID()] == round {
		return nil // a late delivery of a round that timed out
	}
	if !b.hist.record(c.ID(), now-t) {
		return nil // the run is over
	}
	b.frames.Add(1)
	b.got[c.ID()] = round
	b.latest = max(b.latest, now-t)
	if b.received++; b.received == b.expected {
		b.endRound()
	}
	return nil
}

// endRound reports the round complete to runBroadcast. b.mu is held.
func (b *benchRun) endRound() {
	select {
	case b.roundDone <- b.latest:
	default:
	}
}

// startRound begins round k, expecting a delivery on every connection not
// lost, and returns how many.
func (b *benchRun) startRound(k int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.round, b.received, b.expected, b.latest = k, 0, b.live, 0
	return b.live
}

// stopRound ends the round in progress and returns its deliveries, and
// those it expected.
func (b *benchRun) stopRound() (received, expected int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.round = 0
	return b.received, b.expected
}

// currentRound returns the round in progress, for the progress line.
func (b *benchRun) currentRound() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.round
}

// runBroadcast runs the broadcast rounds and returns the histogram of
// round times.
func runBroadcast(ctx context.Context, stderr io.Writer, b *benchRun, clients []*engine.Client, o benchOptions, rep *benchReport) *hdrhistogram.Histogram {
	rounds := newHist()
	stop := startProgress(stderr, func(elapsed time.Duration, _ *int64) string {
		return fmt.Sprintf("%5.1fs  round %d/%d  %d deliveries  %d errors", elapsed.Seconds(), b.currentRound(), o.rounds,
			b.frames.Load(), b.errors.Load())
	})
	defer stop()
	start := time.Now()
	deadline := time.NewTimer(o.duration)
	defer deadline.Stop()
	b.running.Store(true)
	defer b.running.Store(false)
run:
	for k := int64(1); k <= int64(o.rounds); k++ {
		sender := liveClient(clients)
		if sender == nil {
			break // every connection is lost
		}
		live := b.startRound(k)
		b.send(sender, opBroadcast, k)
		roundTimer := time.NewTimer(o.timeout)
		stopped := false
		select {
		case d := <-b.roundDone:
			_ = rounds.RecordValue(min(max(int64(d), histMin), histMax))
			rep.Rounds++
		case <-roundTimer.C:
			got, want := b.stopRound()
			rep.Rounds++
			rep.IncompleteRounds++
			rep.MissedDeliveries += want - got
			if want-got > rep.worstMissed {
				rep.worstMissed, rep.worstOf = want-got, live
			}
			b.errors.Add(1)
			fmt.Fprintf(stderr, "warning: round %d: %d of %d connections got the frame within %v\n",
				k, got, want, o.timeout)
		case <-deadline.C: // the duration ends the run; this round is not counted
			stopped = true
		case <-b.allLost:
			stopped = true
		case <-ctx.Done():
			rep.Interrupted = true
			stopped = true
		}
		roundTimer.Stop()
		b.stopRound()
		// Drop a completion that raced with the timeout.
		select {
		case <-b.roundDone:
		default:
		}
		if stopped {
			break run
		}
	}
	b.hist.close()
	elapsed := time.Since(start)
	rep.ElapsedS = elapsed.Seconds()
	rep.Frames = b.hist.merged().TotalCount()
	rep.FramesPerS = float64(rep.Frames) / elapsed.Seconds()
	return rounds
}

// liveClient returns the first client not closed, or nil.
func liveClient(clients []*engine.Client) *engine.Client {
	for _, cl := range clients {
		select {
		case <-cl.Done():
		default:
			return cl
		}
	}
	return nil
}
