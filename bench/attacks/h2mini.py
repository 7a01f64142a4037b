"""A minimal hand-built HTTP/2 client over stdlib ssl, enough to misbehave on purpose.

Supports: the preface and our SETTINGS (e.g. a zero initial window), HEADERS with literal
HPACK fields (no Huffman, no dynamic table), DATA that honours the server's flow-control
windows (or stops short of END_STREAM), and a reader thread that ACKs SETTINGS/PING, tracks
WINDOW_UPDATEs, response status, DATA bytes, RST_STREAM, GOAWAY and EOF. It never sends a
WINDOW_UPDATE of its own unless `auto_window` is set.

TLS runs over memory BIOs (`SSLContext.wrap_bio`) with one lock around every call into the TLS
object: OpenSSL does not allow one SSL object to be read and written by two threads at once,
and a blocking `SSLSocket` shared by the reader thread and the writer releases the GIL inside
both SSL_read and SSL_write, which crashed the interpreter (SIGSEGV) in a CI run. Only the
plain socket is used from both threads (recv in the reader, sendall in the writer).
"""
import socket
import ssl
import struct
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 3, 4, 5
STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def _hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(headers):
    out = bytearray()
    for name, value in headers:
        n, v = name.encode(), value.encode()
        out += b"\x00" + _hpack_int(len(n), 7) + n + _hpack_int(len(v), 7) + v
    return bytes(out)


class H2Conn:
    def __init__(self, port, ctx, initial_window=65535, auto_window=False, host="127.0.0.1", timeout=10,
                 source=None):
        self.raw = socket.create_connection((host, port), timeout=timeout,
                                            source_address=(source, 0) if source else None)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.tls_lock = threading.Lock()  # every call into self.tls and its BIOs
        self.lock = threading.Lock()      # raw writes, in order; taken before tls_lock
        self._handshake()
        assert self.tls.selected_alpn_protocol() == "h2", self.tls.selected_alpn_protocol()
        self.cv = threading.Condition()   # state
        self.auto_window = auto_window
        self.send_conn_window = 65535
        self.peer_initial_window = 65535
        self.peer_max_frame = 16384
        self.stream_send_window = {}
        self.status = {}
        self.data_bytes = {}
        self.ended = set()
        self.reset = {}
        self.goaway = None
        self.closed = False
        self.closed_at = None
        self.next_stream = 1
        self.rbuf = bytearray()
        self.raw.settimeout(None)
        self._write(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, initial_window)))
        self.reader = threading.Thread(target=self._read_loop, daemon=True)
        self.reader.start()

    def _flush(self):
        """Sends what TLS has queued; the caller holds self.lock."""
        with self.tls_lock:
            out = self.outgoing.read()
        if out:
            self.raw.sendall(out)

    def _feed(self):
        data = self.raw.recv(65536)
        if not data:
            raise EOFError
        with self.tls_lock:
            self.incoming.write(data)

    def _handshake(self):
        while True:
            with self.tls_lock:
                try:
                    self.tls.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
            with self.lock:
                self._flush()
            if done:
                return
            self._feed()

    def _write(self, data):
        with self.lock:
            view = memoryview(data)
            while view:
                with self.tls_lock:
                    n = self.tls.write(view)
                view = view[n:]
            self._flush()

    def _recv_some(self):
        while True:
            with self.tls_lock:
                try:
                    data = self.tls.read(65536)
                except ssl.SSLWantReadError:
                    data = None
                pending = self.outgoing.pending
            if data is not None:
                if not data:
                    raise EOFError
                return data
            if pending:  # e.g. a TLS 1.3 KeyUpdate answer
                with self.lock:
                    self._flush()
            self._feed()

    def _recv_exact(self, n):
        while len(self.rbuf) < n:
            self.rbuf += self._recv_some()
        out = bytes(self.rbuf[:n])
        del self.rbuf[:n]
        return out

    def _read_loop(self):
        try:
            while True:
                head = self._recv_exact(9)
                length = int.from_bytes(head[:3], "big")
                ftype, flags = head[3], head[4]
                stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                payload = self._recv_exact(length) if length else b""
                self._on_frame(ftype, flags, stream, payload)
        except (EOFError, OSError, ValueError):
            pass
        with self.cv:
            self.closed = True
            self.closed_at = time.monotonic()
            self.cv.notify_all()

    def _on_frame(self, ftype, flags, stream, payload):
        with self.cv:
            if ftype == SETTINGS and not flags & ACK:
                for i in range(0, len(payload), 6):
                    ident, value = struct.unpack(">HI", payload[i:i + 6])
                    if ident == SETTINGS_INITIAL_WINDOW_SIZE:
                        delta = value - self.peer_initial_window
                        self.peer_initial_window = value
                        for s in self.stream_send_window:
                            self.stream_send_window[s] += delta
                    elif ident == SETTINGS_MAX_FRAME_SIZE:
                        self.peer_max_frame = value
                self._write(frame(SETTINGS, ACK, 0))
            elif ftype == PING and not flags & ACK:
                self._write(frame(PING, ACK, 0, payload))
            elif ftype == WINDOW_UPDATE:
                inc = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
                if stream == 0:
                    self.send_conn_window += inc
                elif stream in self.stream_send_window:
                    self.stream_send_window[stream] += inc
            elif ftype == HEADERS and stream not in self.status:
                block = payload
                if flags & 0x8:  # PADDED
                    block = block[1:len(block) - block[0]]
                if flags & 0x20:  # PRIORITY
                    block = block[5:]
                if block and block[0] & 0x80:
                    self.status[stream] = STATIC_STATUS.get(block[0] & 0x7F, -1)
                elif block and (block[0] & 0x0F) in STATIC_STATUS and len(block) >= 5:
                    self.status[stream] = int(block[2:5])  # literal with indexed name :status
                else:
                    self.status[stream] = -1
                if flags & END_STREAM:
                    self.ended.add(stream)
            elif ftype == DATA:
                self.data_bytes[stream] = self.data_bytes.get(stream, 0) + len(payload)
                if flags & END_STREAM:
                    self.ended.add(stream)
                if self.auto_window and payload:
                    self._write(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(payload))) +
                                frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", len(payload))))
            elif ftype == RST_STREAM:
                self.reset[stream] = int.from_bytes(payload[:4], "big")
            elif ftype == GOAWAY:
                self.goaway = int.from_bytes(payload[4:8], "big")
            self.cv.notify_all()

    def open_stream(self, path="/validate", content_length=None, end_stream=False):
        headers = [(":method", "POST"), (":scheme", "https"), (":authority", "localhost"), (":path", path),
                   ("content-type", "application/json")]
        if content_length is not None:
            headers.append(("content-length", str(content_length)))
        with self.cv:
            sid = self.next_stream
            self.next_stream += 2
            self.stream_send_window[sid] = self.peer_initial_window
        self._write(frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid, hpack_literal(headers)))
        return sid

    def send_some(self, sid, data, offset, end_stream, deadline, wait=True):
        """Sends data[offset:] on sid as far as the windows allow; returns the new offset.
        Blocks (until deadline) for window only when wait is set and nothing could be sent."""
        while offset < len(data):
            with self.cv:
                while True:
                    room = min(self.send_conn_window, self.stream_send_window[sid], self.peer_max_frame, len(data) - offset)
                    if room > 0 or self.closed or not wait or time.monotonic() > deadline:
                        break
                    self.cv.wait(0.05)
                if room <= 0:
                    return offset
                self.send_conn_window -= room
                self.stream_send_window[sid] -= room
            last = offset + room >= len(data)
            self._write(frame(DATA, END_STREAM if (last and end_stream) else 0, sid, data[offset:offset + room]))
            offset += room
            wait = False  # after progress, let the caller round-robin
        return offset

    def is_closed(self):
        with self.cv:
            return self.closed

    def close(self):
        # shutdown() wakes the reader thread's recv; close() alone would not.
        for op in (lambda: self.raw.shutdown(socket.SHUT_RDWR), self.raw.close):
            try:
                op()
            except OSError:
                pass
