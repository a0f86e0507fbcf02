package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"strings"

	"github.com/gantryhq/gantry/internal/apierr"
	"github.com/gantryhq/gantry/internal/config"
)

// The bounds of one upload. Go's own ReadForm takes 1,000 parts too; a
// client's part headers are a name, a file name and a type.
const (
	maxUploadParts     = 1000
	maxPartHeaderBytes = 16 << 10
)

// upload relays a multipart/form-data request (audio to transcribe, an
// image to edit) to the engine its "model" field names. The upload is
// copied part by part into a temporary file — not memory, but /tmp may be
// tmpfs, so it counts toward max_body_total — with the model field said as
// the engine knows it, then sent from there with its length.
func (g *Gateway) upload(w http.ResponseWriter, r *http.Request) {
	q := g.begin(w, r)
	defer g.finish(q)
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		openAIError(q, http.StatusBadRequest, "multipart_required", r.URL.Path+" takes multipart/form-data with a model field and the file")
		return
	}
	cfg := g.sched.Config()
	limit := int64(cfg.MaxBody)
	if r.ContentLength > limit {
		openAIError(q, http.StatusRequestEntityTooLarge, "request_too_large", fmt.Sprintf("the upload is over max_body (%s)", cfg.MaxBody))
		return
	}
	file, err := os.CreateTemp("", "gantry-upload-*")
	if err != nil {
		openAIError(q, http.StatusInternalServerError, "spool", "cannot keep the upload: "+err.Error())
		return
	}
	sp := &spool{g: g, file: file, total: int64(cfg.MaxBodyTotal)}
	defer sp.release()
	sp.buf = bufio.NewWriterSize(sp, 64<<10) // one write per 64 KiB, not several per part
	out := multipart.NewWriter(sp.buf)
	name, modelHeader, ok := g.spoolParts(q, multipart.NewReader(http.MaxBytesReader(nil, r.Body, limit), params["boundary"]), out)
	if !ok {
		return
	}
	if p, ok := pinOf(r); ok {
		name = g.pinned(p, name)
		if modelHeader == nil {
			modelHeader = textproto.MIMEHeader{"Content-Disposition": {`form-data; name="model"`}}
		}
	}
	if name == "" {
		openAIError(q, http.StatusBadRequest, "model_missing", `the upload has no "model" field; known models: `+g.knownNames(r))
		return
	}
	target, _ := g.resolvePreset(name)
	key, ok := g.admit(q, r, name, nil)
	if !ok {
		return
	}
	defer endAdmitted(key)
	if x := q.act(); x != nil {
		x.asked = name
	}
	lease := g.lease(q, target)
	if lease == nil {
		return
	}
	defer lease.Release()
	size, err := sp.finish(out, modelHeader, lease.Model.ServedName())
	if err != nil {
		a := bodyError(err)
		uploadError(q, a, "cannot keep the upload: "+err.Error())
		return
	}
	h := r.Header.Clone()
	h.Set("Content-Type", out.FormDataContentType())
	resp, err := g.up.sendBody(engineAddr(lease.BaseURL), r, r.Method, r.URL.RequestURI(), q.engineHeader(h, lease.Model.Name, ""), outBody{stream: file, n: size})
	sp.release() // sent: its room is free before the answer is relayed
	if err != nil {
		if !q.gone() {
			g.upstreamDead(q, lease, err)
		}
		return
	}
	defer resp.Body.Close()
	g.writeHead(q, resp, lease)
	g.copyBody(q, resp, lease, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"))
}

// spoolParts copies every part of the upload to out, as it comes, but
// the model's: that is returned (its value and header), to be written
// last as the engine knows the model. ok is false when the upload was
// refused (answered on q): a part beyond maxUploadParts, headers beyond
// maxPartHeaderBytes, a part that is not a named form-data field, or the
// model named twice or in another case (gantry and the engine would read
// different models).
func (g *Gateway) spoolParts(q *request, in *multipart.Reader, out *multipart.Writer) (name string, modelHeader textproto.MIMEHeader, ok bool) {
	for n := 1; ; n++ {
		p, err := in.NextPart()
		if err == io.EOF {
			return name, modelHeader, true
		}
		if err != nil {
			uploadError(q, bodyError(err), "the upload is not valid multipart: "+err.Error())
			return "", nil, false
		}
		if n > maxUploadParts {
			openAIError(q, http.StatusRequestEntityTooLarge, "too_many_parts", fmt.Sprintf(
				"the upload has more than %d parts, gantry's limit of parts per upload", maxUploadParts))
			return "", nil, false
		}
		if size := headerBytes(p.Header); size > maxPartHeaderBytes {
			openAIError(q, http.StatusRequestEntityTooLarge, "part_header_too_large", fmt.Sprintf(
				"part %d's headers are %s, over gantry's limit of %s of header bytes per part", n, config.FormatBytes(int64(size)), config.FormatBytes(maxPartHeaderBytes)))
			return "", nil, false
		}
		h, field, err := partHeader(p.Header)
		switch {
		case err != nil:
			openAIError(q, http.StatusBadRequest, "bad_part", fmt.Sprintf("part %d of the upload: %v", n, err))
			return "", nil, false
		case field == "model" && modelHeader == nil:
			b, _ := io.ReadAll(io.LimitReader(p, 512))
			name, modelHeader = strings.TrimSpace(string(b)), h
			continue
		case strings.EqualFold(field, "model"):
			openAIError(q, http.StatusBadRequest, "ambiguous_model", fmt.Sprintf(
				"part %d names the model again (as %q): send one part named exactly \"model\"", n, field))
			return "", nil, false
		}
		if err := writePart(out, h, p); err != nil {
			uploadError(q, bodyError(err), "could not read the upload: "+err.Error())
			return "", nil, false
		}
	}
}

// uploadError answers a failed upload with a's status and code.
func uploadError(q *request, a apierr.Answer, msg string) {
	if a.RetryAfter != "" {
		q.Header().Set("Retry-After", a.RetryAfter)
	}
	openAIError(q, a.Status, a.Code, msg)
}

// headerBytes is the size of a part's headers as they came.
func headerBytes(h textproto.MIMEHeader) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4 // ": " and CR LF
		}
	}
	return n
}

// partHeader is the header gantry sends of a part: its form-data name and
// file name as gantry read them, and its one Content-Type. Rewritten, not
// copied, so the engine's parser reads the part as gantry's did: a header
// that two parsers read differently (two names, an "attachment" whose name
// Python's parsers still take) cannot carry a second model.
func partHeader(in textproto.MIMEHeader) (out textproto.MIMEHeader, name string, err error) {
	cd := in.Values("Content-Disposition")
	if len(cd) != 1 {
		return nil, "", fmt.Errorf("a part needs one Content-Disposition: form-data; name=\"...\" header, it has %d", len(cd))
	}
	disp, params, err := mime.ParseMediaType(cd[0])
	if err != nil || disp != "form-data" || params["name"] == "" {
		return nil, "", fmt.Errorf("Content-Disposition %s is not form-data with one name", quote(cd[0]))
	}
	name = params["name"]
	out = textproto.MIMEHeader{"Content-Disposition": {`form-data; name="` + quoteEscaper.Replace(name) + `"`}}
	if fn, ok := params["filename"]; ok {
		out["Content-Disposition"] = []string{multipart.FileContentDisposition(name, fn)}
	}
	switch ct := in.Values("Content-Type"); len(ct) {
	case 0:
	case 1:
		out["Content-Type"] = ct
	default:
		return nil, "", fmt.Errorf("part %s has %d Content-Type headers", quote(name), len(ct))
	}
	return out, name, nil
}

// quoteEscaper escapes a quoted-string as multipart.Writer does.
var quoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"")

func writePart(w *multipart.Writer, header map[string][]string, body io.Reader) error {
	pw, err := w.CreatePart(header)
	if err != nil {
		return err
	}
	_, err = io.Copy(pw, body)
	return err
}

// spool is an upload on its way to a temporary file: what it writes is
// held against max_body_total (held is what the caller gives back).
type spool struct {
	g     *Gateway
	file  *os.File
	buf   *bufio.Writer
	total int64
	held  int64
}

func (s *spool) Write(p []byte) (int, error) {
	s.held += int64(len(p))
	if s.g.bodies.Add(int64(len(p))) > s.total {
		return 0, errBodiesFull
	}
	return s.file.Write(p)
}

// release removes the file and gives its room back; once.
func (s *spool) release() {
	if s.file == nil {
		return
	}
	s.file.Close()
	os.Remove(s.file.Name())
	s.file = nil
	s.g.bodies.Add(-s.held)
	s.held = 0
}

// finish writes the model's part (the engine's name for it) and the
// upload's end, and rewinds the file for sending; size is its length.
func (s *spool) finish(out *multipart.Writer, modelHeader textproto.MIMEHeader, served string) (size int64, err error) {
	if err = writePart(out, modelHeader, strings.NewReader(served)); err == nil {
		err = out.Close()
	}
	if err == nil {
		err = s.buf.Flush()
	}
	if err == nil {
		size, err = s.file.Seek(0, io.SeekCurrent)
	}
	if err == nil {
		_, err = s.file.Seek(0, io.SeekStart)
	}
	return size, err
}

// upstreamRelay relays any request under /upstream/{model}/ to that
// model's engine (starting it when needed), for engine-specific endpoints:
// /tokenize, /detokenize, llama.cpp's /infill and /slots, SGLang's
// /get_server_info. It needs an admin key: these routes can change an
// engine's state.
func (g *Gateway) upstreamRelay(w http.ResponseWriter, r *http.Request) {
	q := g.begin(w, r)
	defer g.finish(q)
	if x := q.act(); x != nil {
		x.asked = r.PathValue("model")
	}
	uri, ok := upstreamTarget(r)
	if !ok {
		openAIError(q, http.StatusBadRequest, "bad_path", fmt.Sprintf(
			"the path %s holds a control character or a space: an engine's request line cannot carry it", quote(r.URL.EscapedPath())))
		return
	}
	lease := g.lease(q, r.PathValue("model"))
	if lease == nil {
		return
	}
	defer lease.Release()
	body := outBody{stream: r.Body, n: r.ContentLength}
	if r.ContentLength < 0 {
		b, err := g.readBody(q)
		if err != nil {
			a := bodyError(err)
			openAIError(q, a.Status, a.Code, err.Error())
			return
		}
		body = outBody{bytes: b}
	} else if r.ContentLength > int64(g.sched.Config().MaxBody) {
		openAIError(q, http.StatusRequestEntityTooLarge, "request_too_large", "the body is over max_body")
		return
	}
	resp, err := g.up.sendBody(engineAddr(lease.BaseURL), r, r.Method, uri, q.engineHeader(r.Header, lease.Model.Name, ""), body)
	if err != nil {
		if !q.gone() && !errors.Is(err, io.ErrUnexpectedEOF) {
			g.upstreamDead(q, lease, err)
		}
		return
	}
	defer resp.Body.Close()
	g.writeHead(q, resp, lease)
	g.copyBody(q, resp, lease, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"))
}

// upstreamTarget is the engine's request target of a request under
// /upstream/{model}/: the rest of the path as the client escaped it (a
// decoded %0d%0a would end the request line and start a second request on
// the engine's pooled connection) and the query. ok is false when the
// path, decoded, holds a control character or a space.
func upstreamTarget(r *http.Request) (uri string, ok bool) {
	if ctlOrSpace(r.PathValue("path")) || ctlOrSpace(r.PathValue("model")) {
		return "", false
	}
	_, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), "/upstream/"), "/")
	uri = "/" + rest
	if r.URL.RawQuery != "" {
		uri += "?" + r.URL.RawQuery
	}
	return uri, validTarget(uri)
}
