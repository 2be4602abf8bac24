"""Compiled MinHash kernels (numba): raw UTF-8 text to signatures in one pass per document.

The numpy engine (:mod:`curate.dedup.shingles`, :mod:`curate.dedup.minhash`) builds whole-batch
temporaries: a boolean per byte, a hash per word, a hash per shingle, a bin index per shingle, a
``(N, num_perm)`` work array. The kernels here compute *exactly the same values* (the same word hash,
8 bytes at a time; the same polynomial n-gram hash; the same one-permutation bins and optimal
densification probes) document by document, keeping only ``ngram`` word hashes and ``num_perm``
minima in flight. ``tests/test_dedup_kernels.py`` checks that both engines give identical signatures.

numba is an optional dependency of the ``dedup`` extra; without it (or with ``CURATE_NO_NUMBA=1``)
:func:`available` is False and callers use the numpy engine. Compiled code is cached on disk
(``cache=True``), so a worker process loads it instead of compiling again.
"""

from __future__ import annotations

import logging
import os

import numpy as np

log = logging.getLogger(__name__)

try:  # pragma: no cover - exercised by whichever engine is installed
    if os.environ.get("CURATE_NO_NUMBA"):
        raise ImportError("CURATE_NO_NUMBA is set")
    import numba
    from llvmlite import ir
    from numba.extending import intrinsic
except ImportError as _exc:  # numba missing or too old for this numpy
    numba = None
    _IMPORT_ERROR = str(_exc)
else:
    _IMPORT_ERROR = ""

_GOLD = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_P64 = np.uint64(0x100000001B3 * 2 + 1)
_LOW32 = np.uint64(0xFFFFFFFF)
_UNSET = np.uint64(1 << 32)
_EMPTY = np.uint32(0xFFFFFFFF)
_S8, _S27, _S30, _S31, _S32 = np.uint64(8), np.uint64(27), np.uint64(30), np.uint64(31), np.uint64(32)
_ONE = np.uint64(1)
#: _MASKS[k] keeps the low k bytes of a little-endian uint64
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_H80, _L7F = np.uint64(0x8080808080808080), np.uint64(0x7F7F7F7F7F7F7F7F)
_B20, _B1F, _B05 = np.uint64(0x2020202020202020), np.uint64(0x1F1F1F1F1F1F1F1F), np.uint64(0x0505050505050505)
_B3F, _B25 = np.uint64(0x3F3F3F3F3F3F3F3F), np.uint64(0x2525252525252525)
_B50, _B46 = np.uint64(0x5050505050505050), np.uint64(0x4646464646464646)
_GATHER = np.uint64(0x0002040810204081)  # moves bit 7 of byte j to bit 56 + j


def padded_words(data: np.ndarray) -> np.ndarray:
    """``data`` copied into a zero-padded uint64 array (aligned 8-byte loads at any byte offset)."""
    words = np.zeros(len(data) // 8 + 3, dtype=np.uint64)
    words.view(np.uint8)[:len(data)] = data
    return words


def available() -> bool:
    """True when the compiled engine can be used."""
    return numba is not None


def unavailable_reason() -> str:
    return _IMPORT_ERROR


if numba is not None:
    _jit = numba.njit(cache=True, nogil=True, boundscheck=False)

    @_jit
    def _mix(z):
        """SplitMix64 finaliser, as :func:`curate.dedup.hashing.mix64`."""
        z = z + _GOLD
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)

    @_jit
    def _load(words, pos):
        """The 8 bytes at byte offset ``pos`` of ``words`` (uint64, little-endian), from two aligned loads."""
        q = pos >> 3
        sh = np.uint64((pos & 7) * 8)
        return (words[q] >> sh) | ((words[q + 1] << _ONE) << (np.uint64(63) - sh))

    @_jit
    def _word_hash(words, start, length):
        """As :func:`curate.dedup.hashing.substring_hashes` for one word."""
        h = _mix((_load(words, start) & _MASKS[min(length, 8)]) ^ (np.uint64(length) * _M2))
        off = 8
        while length > off:
            h = _mix((_load(words, start + off) & _MASKS[min(length - off, 8)]) ^ h)
            off += 8
        return h

    @intrinsic
    def _cttz(typingctx, x):
        """Count trailing zeros (LLVM ``cttz``) of a non-zero integer."""
        def codegen(context, builder, signature, args):
            return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))
        return x(x), codegen

    @_jit
    def word_mask(words, nbytes):
        """Bit ``i % 64`` of ``out[i // 64]`` is set when byte ``i`` belongs to a word (SWAR, 8 bytes at a
        time: non-ASCII bytes, ASCII letters via ``(b | 0x20) - 0x61 < 26``, digits)."""
        out = np.zeros(nbytes // 64 + 2, dtype=np.uint64)
        for w in range((nbytes + 7) // 8):
            x = words[w]
            lo = x & _L7F
            y = lo | _B20
            letter = (y + _B1F) & ~(y + _B05)
            digit = (lo + _B50) & ~(lo + _B46)
            m80 = (x | letter | digit) & _H80
            out[w >> 3] |= ((m80 * _GATHER) >> np.uint64(56)) << np.uint64((w & 7) * 8)
        return out

    @_jit
    def _word_bounds(mask, begin, end, starts, ends):
        """Start and end byte of every word in ``[begin, end)`` from the word-byte bit mask; the count."""
        ns = 0
        ne = 0
        if begin >= end:
            return 0
        q0 = begin >> 6
        q1 = (end - 1) >> 6
        carry = np.uint64(0)
        for q in range(q0, q1 + 1):
            m = mask[q]
            if q == q0:
                m &= _ALL << np.uint64(begin & 63)
            if q == q1:
                m &= _ALL >> np.uint64(63 - ((end - 1) & 63))
            shifted = (m << _ONE) | carry
            s = m & ~shifted
            e = ~m & shifted
            carry = m >> np.uint64(63)
            base = q << 6
            while s:
                starts[ns] = base + np.int64(_cttz(s))
                ns += 1
                s &= s - _ONE
            while e:
                ends[ne] = base + np.int64(_cttz(e))
                ne += 1
                e &= e - _ONE
        if ne < ns:
            ends[ne] = end
        return ns

    @_jit
    def _add(work, g, seed_mix, k):
        """One shingle hash into the one-permutation bins (as ``minhash.signatures``)."""
        x = _mix(g ^ seed_mix)
        b = ((x >> _S32) * np.uint64(k)) >> _S32
        work[b] = min(work[b], x & _LOW32)

    @_jit
    def _finish(work, out, seed_mix, k):
        """Filled bins as they are, empty bins by optimal densification (as ``minhash._densify``)."""
        for j in range(k):
            if work[j] != _UNSET:
                out[j] = np.uint32(work[j])
                continue
            jj = np.uint64(j) << _S32
            t = _ONE
            while True:
                probe = _mix((jj ^ (t * _GOLD)) ^ seed_mix)
                target = ((probe >> _S32) * np.uint64(k)) >> _S32
                if work[target] != _UNSET:
                    out[j] = np.uint32(work[target])
                    break
                t += _ONE

    @_jit
    def word_signatures(words, nbytes, offsets, docs, ngram, k, seed_mix, sig, counts):
        """Signatures of word ``ngram`` shingles of every document of an Arrow-style byte buffer.

        ``words`` holds the ``nbytes`` bytes of the (already lower-cased) UTF-8 texts, zero-padded, as
        uint64 (:func:`padded_words`); ``offsets`` (int64, N + 1) are the texts' byte bounds; only the
        documents listed in ``docs`` (int64) are signed.
        Writes ``sig`` (N, k) uint32 and ``counts`` (N,) int64 (shingles per document).

        Per document: word bounds from the batch's word-byte bit mask (:func:`word_mask`, trailing-zero
        counts over 64 bytes at a time), then per word its hash and
        the rolling n-gram hash ``sum_j h[i + j] * P**(n - 1 - j)`` (drop the oldest word's term,
        multiply by ``P``, add the new word), then the shingle into its bin."""
        n = len(offsets) - 1
        mask = word_mask(words, nbytes)
        longest = 0
        for d in range(n):
            longest = max(longest, offsets[d + 1] - offsets[d])
        starts = np.empty(longest + 1, dtype=np.int64)
        ends = np.empty(longest + 1, dtype=np.int64)
        ring = np.zeros(ngram, dtype=np.uint64)
        work = np.empty(k, dtype=np.uint64)
        top = _ONE  # P ** (ngram - 1)
        for _ in range(ngram - 1):
            top = top * _P64
        for d in docs:
            nw = _word_bounds(mask, offsets[d], offsets[d + 1], starts, ends)
            work[:] = _UNSET
            pos = 0  # ring slot of the oldest word of the window
            g = np.uint64(0)
            for t in range(nw):
                h = _word_hash(words, starts[t], ends[t] - starts[t])
                if t >= ngram:
                    g = g - ring[pos] * top
                g = g * _P64 + h
                ring[pos] = h
                pos += 1
                if pos == ngram:
                    pos = 0
                if t + 1 >= ngram:
                    _add(work, _mix(g), seed_mix, k)
            shingles = nw - ngram + 1 if nw >= ngram else min(nw, 1)
            if 0 < nw < ngram:  # a short document is one shingle over all its words
                _add(work, _mix(g), seed_mix, k)
            counts[d] = shingles
            if shingles == 0:
                sig[d, :] = _EMPTY
            else:
                _finish(work, sig[d], seed_mix, k)

    @_jit
    def ascii_lower(words):
        """Lower-case the ASCII letters of a :func:`padded_words` buffer in place (SWAR: bytes 0x41-0x5A
        get bit 0x20)."""
        for w in range(len(words)):
            x = words[w]
            lo = x & _L7F
            upper = (lo + _B3F) & ~(lo + _B25) & ~x & _H80
            words[w] = x | (upper >> np.uint64(2))

    @_jit
    def hash_signatures(hashes, offsets, k, seed_mix, sig):
        """Signatures from ready shingle hashes (document ``i`` owns ``hashes[offsets[i]:offsets[i+1]]``)."""
        n = len(offsets) - 1
        work = np.empty(k, dtype=np.uint64)
        for d in range(n):
            if offsets[d + 1] == offsets[d]:
                sig[d, :] = _EMPTY
                continue
            work[:] = _UNSET
            for i in range(offsets[d], offsets[d + 1]):
                _add(work, hashes[i], seed_mix, k)
            _finish(work, sig[d], seed_mix, k)

    @_jit
    def band_key(sig, idx, band, rows):
        """64-bit key of band ``band`` of the rows ``idx`` (as :func:`curate.dedup.lsh.band_key`)."""
        out = np.empty(len(idx), dtype=np.uint64)
        for i in range(len(idx)):
            h = np.uint64(0)
            for c in range(band * rows, (band + 1) * rows):
                h = _mix((h * np.uint64(0x100000001B3)) ^ np.uint64(sig[idx[i], c]))
            out[i] = h
        return out
