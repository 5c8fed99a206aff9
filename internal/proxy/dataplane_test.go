package proxy

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
)

func TestNftablesUnavailable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("nftables netlink: netlink socket: %w", syscall.EPROTONOSUPPORT), true},
		{fmt.Errorf("read nftables table svcnet: list table: %w", syscall.EINVAL), true},
		{fmt.Errorf("read nftables table svcnet: %w", syscall.EOPNOTSUPP), true},
		{fmt.Errorf("nftables through the nft tool: could not find nftables binary: %w", exec.ErrNotFound), true},
		{errors.New("could not run nftables command: Error: Could not process rule: Operation not supported"), true},
		{fmt.Errorf("nftables netlink: %w", syscall.EPERM), false},
		{errors.New("some other failure"), false},
	}
	for _, tt := range tests {
		if got := nftablesUnavailable(tt.err); got != tt.want {
			t.Errorf("nftablesUnavailable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestDataplaneConfig(t *testing.T) {
	c := testConfig()
	c.Default()
	if c.Dataplane != DataplaneNFTables {
		t.Errorf("default dataplane %q", c.Dataplane)
	}
	c.Dataplane = DataplaneUserspace
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	c.Dataplane = "ebpf"
	if err := c.Validate(); err == nil {
		t.Error("an unknown dataplane was accepted")
	}
}
