package sync

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/imapctl/imapctl/internal/testmail"
)

// Environment of the child process of TestKill9: the source, target and
// state directories.
const (
	envChildSrc   = "IMAPCTL_SYNC_TEST_CHILD_SRC"
	envChildDst   = "IMAPCTL_SYNC_TEST_CHILD_DST"
	envChildState = "IMAPCTL_SYNC_TEST_CHILD_STATE"
)

// TestKillChild is the process TestKill9 kills: a sync that prints a line
// per message copied. It does nothing in a normal test run.
func TestKillChild(t *testing.T) {
	srcDir := os.Getenv(envChildSrc)
	if srcDir == "" {
		t.Skip("child process of TestKill9")
	}
	saveInterval = 5 * time.Millisecond
	src, dst := newMaildir(t, srcDir), newMaildir(t, os.Getenv(envChildDst))
	opts := Options{Account: "kill", StateDir: os.Getenv(envChildState), Parallel: 3, SplitThreshold: 30}
	opts.Progress.Copied = func(string, int64) {
		fmt.Println("copied")
		time.Sleep(time.Millisecond)
	}
	if _, err := Run(context.Background(), src, dst, opts); err != nil {
		t.Fatal(err)
	}
}

// TestKill9 kills a sync with SIGKILL at several points, each time
// resuming with a new process, and checks that the final run leaves every
// message on the target exactly once.
func TestKill9(t *testing.T) {
	if testing.Short() || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("needs subprocesses")
	}
	srcDir, dstDir, stateDir := t.TempDir(), t.TempDir(), t.TempDir()
	src := newMaildir(t, srcDir)
	seed(t, src, testmail.Generate(testmail.Options{Seed: 12, Count: 240, MaxAttachment: 4096}))

	for _, after := range []int{5, 40, 1, 70} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), envChildSrc+"="+srcDir, envChildDst+"="+dstDir, envChildState+"="+stateDir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			if sc.Text() == "copied" {
				if n++; n == after {
					if err := cmd.Process.Kill(); err != nil {
						t.Fatal(err)
					}
					break
				}
			}
		}
		go func() { // drain what was written before the kill
			for sc.Scan() {
			}
		}()
		_ = cmd.Wait()
		t.Logf("killed after %d copies", n)
	}
	if ents, _ := os.ReadDir(stateDir); len(ents) == 0 {
		t.Error("the killed processes saved no state")
	}
	dst := newMaildir(t, dstDir)
	rep := run(t, src, dst, Options{Account: "kill", StateDir: stateDir, Verify: true})
	if !*rep.Verified {
		t.Errorf("missing after the last run: %v", rep.Missing)
	}
	sameSnapshots(t, "after kills", snapshot(t, dst), snapshot(t, src))
}
