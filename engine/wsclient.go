// This file holds how a ws:// client's Dial waits for the upgrade
// (internal/wslayer writes the request and checks the response).

package engine

import (
	"context"
)

// upgradeDone hands the outcome of an upgrade, nil or the reason its
// connection closed, to the Dial waiting for the first one; later ones
// are dropped. From any goroutine.
func (cl *Client) upgradeDone(err error) {
	if cl.dialed == nil {
		return
	}
	select {
	case cl.dialed <- err:
	default:
	}
}

// awaitUpgrade waits for the first upgrade of a ws:// client, after its
// TCP connection is up: Dial reports a refused upgrade as its error.
func (cl *Client) awaitUpgrade(ctx context.Context) error {
	if cl.dialed == nil {
		return nil
	}
	select {
	case err := <-cl.dialed:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
