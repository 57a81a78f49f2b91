package client

import (
	"context"
	"fmt"

	"github.com/tether-run/tether/internal/errdefs"
	"github.com/tether-run/tether/shimapi"
)

// Upgrade asks the shim to exec binary in place (shimapi.UpgradeReq) and
// returns the new binary's answer.
func (c *Client) Upgrade(ctx context.Context, binary string) (*shimapi.Upgrade, error) {
	resp, err := c.call(ctx, shimapi.UpgradeReq{Binary: binary}, c.d.Double)
	if err != nil {
		return nil, err
	}
	if resp.Upgrade == nil {
		return nil, fmt.Errorf("upgrade: %w: no upgrade in answer", errdefs.ErrUnresponsive)
	}
	return resp.Upgrade, nil
}
