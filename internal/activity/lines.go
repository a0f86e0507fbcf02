package activity

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// maxLine bounds a line a reader takes: a record is well under a KiB once
// its fields are cut; a longer line (a gantry before the cut wrote them)
// is skipped, never held whole.
const maxLine = 64 << 10

// eachLine calls fn with every non-empty line of rd (trimmed) up to
// maxLine bytes, and counts the longer ones it skips.
func eachLine(rd io.Reader, fn func(line []byte)) (long int, err error) {
	br := bufio.NewReaderSize(rd, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long++
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		} else if l := bytes.TrimSpace(line); len(l) > 0 {
			fn(l)
		}
		if err == io.EOF {
			return long, nil
		}
		if err != nil {
			return long, err
		}
	}
}
