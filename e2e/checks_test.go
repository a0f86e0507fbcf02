package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// The suite's own checks, each fed the fault it is there to catch: a check
// that cannot fail proves nothing.

// TestChildrenInheritNoFiles: a descriptor this process inherited (as the
// runner's lock) reaches a child until closeInheritedFiles, and not after.
func TestChildrenInheritNoFiles(t *testing.T) {
	fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY, 0) // no O_CLOEXEC: as inherited
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	inChild := func() bool {
		return exec.Command("sh", "-c", fmt.Sprintf("[ -e /proc/$$/fd/%d ]", fd)).Run() == nil
	}
	if !inChild() {
		t.Fatalf("descriptor %d, not close-on-exec, did not reach a child: the check cannot see a leak", fd)
	}
	closeInheritedFiles()
	if inChild() {
		t.Errorf("descriptor %d still reaches a child after closeInheritedFiles", fd)
	}
}
