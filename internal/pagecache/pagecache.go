// Package pagecache reads and drops a model's files from the kernel's page
// cache. On a unified-memory box (DGX Spark) the page cache lives in the
// memory the GPU allocates from, and CUDA counts it as used: a checkpoint
// just read or copied can make an engine's start fail although the memory
// is reclaimable (vllm-project/vllm#48140; dropping the checkpoint's pages
// with posix_fadvise fixed a load dying at 73–97 % in
// MiaAI-Lab/Qwen3.8-Flash-Next-Dual-DGX-Sparks#35). Evicting a file's own
// pages needs no root; dropping every clean cache does.
package pagecache

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// weightExt are the files worth evicting: the weights. Small files
// (config, tokenizer) are left alone.
var weightExt = []string{".safetensors", ".gguf", ".bin", ".pt", ".pth", ".engine", ".plan"}

// Files lists the weight files of a model path: the file itself, or the
// weight files under a folder (symlinks followed, as the Hugging Face
// cache links its snapshots to blobs).
func Files(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	var out []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // an unreadable corner does not stop the rest
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != path {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		for _, ext := range weightExt {
			if strings.HasSuffix(d.Name(), ext) {
				out = append(out, p)
				break
			}
		}
		return nil
	})
	return out, err
}

// Resident is how many bytes of the files are in the page cache now
// (mincore over a read-only mapping of each).
func Resident(files []string) (int64, error) {
	var total int64
	var errs []error
	page := int64(os.Getpagesize())
	for _, f := range files {
		n, err := resident(f, page)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		total += n
	}
	return total, errors.Join(errs...)
}

func resident(path string, page int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return 0, err
	}
	var total int64
	// Map in windows: a 60 GiB shard need not be mapped whole.
	const window = 1 << 30
	vec := make([]byte, window/page)
	for off := int64(0); off < st.Size(); off += window {
		n := min(window, st.Size()-off)
		m, err := unix.Mmap(int(f.Fd()), off, int(n), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return total, err
		}
		pages := (n + page - 1) / page
		_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(n), uintptr(unsafe.Pointer(&vec[0])))
		unix.Munmap(m) //nolint:errcheck // a read-only mapping
		if errno != 0 {
			return total, &os.PathError{Op: "mincore", Path: path, Err: errno}
		}
		for i, v := range vec[:pages] {
			if v&1 == 1 {
				if last := int64(i) == pages-1; last && n%page != 0 {
					total += n % page
				} else {
					total += page
				}
			}
		}
	}
	return total, nil
}

// Evict drops the files' pages from the page cache: it writes their
// dirty pages back and waits for that (a checkpoint written a moment ago —
// a download, a copy — is mostly dirty, and the kernel drops only clean
// pages), then asks the kernel to drop them (posix_fadvise
// POSIX_FADV_DONTNEED; no root needed). Pages another process has mapped
// stay.
func Evict(files []string) error {
	var errs []error
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := writeBack(int(f.Fd())); err != nil {
			errs = append(errs, &os.PathError{Op: "write back", Path: p, Err: err})
		}
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			errs = append(errs, &os.PathError{Op: "fadvise", Path: p, Err: err})
		}
		f.Close()
	}
	return errors.Join(errs...)
}

// writeBack writes a file's dirty pages and waits until they are on disk
// (sync_file_range: data only, which is all the page cache needs; where a
// file system does not take it, fdatasync). A clean file costs nothing.
func writeBack(fd int) error {
	err := unix.SyncFileRange(fd, 0, 0,
		unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
	if err == unix.ENOSYS || err == unix.EINVAL || err == unix.ESPIPE {
		err = unix.Fdatasync(fd)
	}
	return err
}

// DropAll writes dirty pages out and drops every clean cache (page cache,
// dentries, inodes): `sync; echo 3 > /proc/sys/vm/drop_caches`, which
// NVIDIA's Spark playbooks give for memory errors within capacity. Root
// only.
func DropAll() error {
	return dropAll(os.Geteuid(), "/proc/sys/vm/drop_caches")
}

func dropAll(euid int, control string) error {
	if euid != 0 {
		return errors.New("dropping all caches needs root (gantry runs as uid " + itoa(euid) + "); memory.drop_caches is skipped")
	}
	unix.Sync()
	return os.WriteFile(control, []byte("3\n"), 0)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
