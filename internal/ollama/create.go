package ollama

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
)

// create registers the model's GGUF under name through Ollama's API, as
// `ollama create` does on the client side (docs/api.md: "Check if a Blob
// Exists", "Push a Blob", "Create a Model" with files): the file's SHA-256,
// the blob uploaded unless the server has it, then a model made of it.
// Through the API it works the same for a server in a container, which
// cannot see the host's path.
func (md *Model) create(ctx context.Context, name string) error {
	digest, size, err := fileDigest(md.path)
	if err != nil {
		return err
	}
	if err := md.srv.pushBlob(ctx, md.path, digest, size); err != nil {
		return err
	}
	req := map[string]any{"model": name, "files": map[string]string{filepath.Base(md.path): digest}, "stream": false}
	return md.srv.post(ctx, "/api/create", req, nil)
}

// fileDigest is "sha256:<hex>" of the file at path, and its size.
func fileDigest(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("reading %s: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

// pushBlob uploads the file at path as the blob digest unless the server
// already has it. The upload is bounded by ctx (the model's start_timeout),
// not by the client's time-out for small calls: a checkpoint is large.
func (s *Server) pushBlob(ctx context.Context, path, digest string, size int64) error {
	url := s.base() + "/api/blobs/" + digest
	head, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(head)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	post, err := http.NewRequestWithContext(ctx, http.MethodPost, url, f)
	if err != nil {
		return err
	}
	post.ContentLength = size
	resp, err = http.DefaultClient.Do(post)
	if err != nil {
		return fmt.Errorf("uploading %s to ollama: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("uploading %s to ollama: %s %s", path, resp.Status, b)
	}
	return nil
}
