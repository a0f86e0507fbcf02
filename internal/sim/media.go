package sim

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// The media routes answer as speech and image servers behind the OpenAI
// API do (vLLM serves Whisper models on /v1/audio/transcriptions), so the
// gateway's routing of uploads and binary answers is tested for real.

// transcribe answers a multipart upload with what it received; a model
// field that is not the sim's is refused, as vLLM refuses an unknown
// model.
func (s *server) transcribe(w http.ResponseWriter, r *http.Request) {
	s.total.Add(1)
	if s.notReady(w) {
		return
	}
	if err := r.ParseMultipartForm(8 << 20); err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_request_error", "want multipart/form-data: "+err.Error())
		return
	}
	defer r.MultipartForm.RemoveAll() //nolint:errcheck // temporary files
	if m := r.FormValue("model"); m != s.o.Model {
		writeErr(w, http.StatusNotFound, "NotFoundError", fmt.Sprintf("The model `%s` does not exist.", m))
		return
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_request_error", "the upload has no file")
		return
	}
	n, _ := io.Copy(io.Discard, f)
	s.done()
	writeJSON(w, http.StatusOK, map[string]any{"text": fmt.Sprintf("the sim heard %d bytes of %s", n, hdr.Filename)})
}

// speak answers text with a short WAV of silence.
func (s *server) speak(w http.ResponseWriter, r *http.Request) {
	s.total.Add(1)
	if s.notReady(w) {
		return
	}
	var req struct {
		Input string `json:"input"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || req.Input == "" {
		writeErr(w, http.StatusBadRequest, "invalid_request_error", `want {"model", "input", "voice"}`)
		return
	}
	const rate, samples = 16000, 1600
	b := make([]byte, 44+2*samples)
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*samples))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], rate)
	binary.LittleEndian.PutUint32(b[28:], rate*2)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], 2*samples)
	s.done()
	w.Header().Set("Content-Type", "audio/wav")
	w.Write(b) //nolint:errcheck // client gone
}

// image answers a prompt (or an edit) with a 1×1 PNG, base64.
func (s *server) image(w http.ResponseWriter, r *http.Request) {
	s.total.Add(1)
	if s.notReady(w) {
		return
	}
	io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20)) //nolint:errcheck // the sim draws the same pixel whatever is asked
	const pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
	if _, err := base64.StdEncoding.DecodeString(pixel); err != nil {
		panic(err)
	}
	s.done()
	writeJSON(w, http.StatusOK, map[string]any{"created": time.Now().Unix(), "data": []any{map[string]string{"b64_json": pixel}}})
}
