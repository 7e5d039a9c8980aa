//go:build !linux

package probe

import "testing"

func notAcceptingPort(t testing.TB) int {
	t.Skip("needs Linux accept-queue behaviour")
	return 0
}
