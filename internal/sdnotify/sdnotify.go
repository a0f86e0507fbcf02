// Package sdnotify speaks systemd's notify protocol (sd_notify(3)): one
// datagram of KEY=VALUE lines to the socket in $NOTIFY_SOCKET. Without that
// variable every call does nothing, so gantry runs the same outside
// systemd.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// Notify sends the state lines (e.g. "READY=1", "STATUS=…"). It returns
// nil when gantry is not run by systemd.
func Notify(lines ...string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if strings.HasPrefix(addr, "@") { // an abstract socket
		addr = "\x00" + addr[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	_, err = conn.Write([]byte(strings.Join(lines, "\n")))
	return err
}

// Ready says the service is up.
func Ready(status string) error { return Notify("READY=1", "STATUS="+status) }

// Status updates the status line systemctl status shows.
func Status(status string) error { return Notify("STATUS=" + status) }

// Reloading says a reload began; systemd wants the monotonic time with it.
func Reloading() error {
	return Notify("RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", monotonicUsec()))
}

// Stopping says the service is shutting down.
func Stopping() error { return Notify("STOPPING=1", "STATUS=stopping engines") }
