"""Independent float64 numpy reference of every metric: plain loops over classes, no nclab code."""

from __future__ import annotations

import numpy as np


def reference(
    h, y, w=None, b=None, center="weighted", counts=None, many=100, few=20, rcond=1e-10, stable=1e-3
):
    h = np.asarray(h, dtype=np.float64)
    y = np.asarray(y)
    k = int(w.shape[0]) if w is not None else int(y.max()) + 1
    n, d = h.shape
    classes = [c for c in range(k) if (y == c).sum() > 0]
    kp = len(classes)
    mu = {c: h[y == c].mean(0) for c in classes}
    nk = {c: int((y == c).sum()) for c in classes}
    if center == "weighted":
        mu_g = h.mean(0)
    else:
        mu_g = np.mean([mu[c] for c in classes], axis=0)
    mt = np.stack([mu[c] - mu_g for c in classes])
    multi = [c for c in classes if nk[c] >= 2]
    nw = sum(nk[c] for c in multi)
    sigma_w = np.zeros((d, d))
    for i in range(n):
        if nk[y[i]] >= 2:
            r = h[i] - mu[y[i]]
            sigma_w += np.outer(r, r)
    sigma_w /= nw
    sigma_b = mt.T @ mt / kp
    # Test data has well-separated singular values, so any cutoff between the rounding level of the
    # squared form (~1e-16 relative) and the smallest genuine eigenvalue gives the same pseudo-inverse.
    pinv = np.linalg.pinv(sigma_b, rcond=rcond, hermitian=True)
    out = {"nc1": np.trace(sigma_w @ pinv) / kp}
    # the spectrum of Sigma_B: the rank the pseudo-inverse used, its smallest kept eigenvalue relative
    # to the largest, and NC1 over the eigenvectors with eigenvalue >= stable * largest
    ev, vec = np.linalg.eigh(sigma_b)
    kept = ev > rcond * ev.max()
    out["nc1_rank"] = int(kept.sum())
    out["nc1_min_eig_ratio"] = ev[kept].min() / ev.max()
    big = ev >= stable * ev.max()
    out["nc1_stable"] = sum(vec[:, j] @ sigma_w @ vec[:, j] / ev[j] for j in np.flatnonzero(big)) / kp
    pi = np.array([nk[c] / n for c in classes])
    sbw = sum(pi[j] * np.outer(mt[j], mt[j]) for j in range(kp))
    pinvw = np.linalg.pinv(sbw, rcond=1e-10, hermitian=True)
    out["nc1_weighted_sb"] = np.trace(sigma_w @ pinvw) / kp
    per_nc1 = {}
    for c in multi:
        r = h[y == c] - mu[c]
        sk = r.T @ r / nk[c]
        per_nc1[c] = np.trace(sk @ pinv) / kp
    var = {c: np.mean(np.sum((h[y == c] - mu[c]) ** 2, 1)) for c in classes}
    cd = []
    for i, a in enumerate(multi):
        for bb in multi[i + 1 :]:
            cd.append((var[a] + var[bb]) / (2 * np.sum((mu[a] - mu[bb]) ** 2)))
    out["nc1_cdnv"] = np.mean(cd)
    norms = np.linalg.norm(mt, axis=1)
    out["nc2_equinorm"] = norms.std() / norms.mean()
    cos = []
    for i in range(kp):
        for j in range(i + 1, kp):
            cos.append(mt[i] @ mt[j] / (norms[i] * norms[j]))
    cos = np.array(cos)
    out["nc2_equiangle"] = cos.std()
    out["nc2_maxangle"] = np.mean(np.abs(cos + 1 / (kp - 1)))
    g = mt @ mt.T
    etf = (np.eye(kp) - np.ones((kp, kp)) / kp) / np.sqrt(kp - 1)
    out["nc2_etf"] = np.linalg.norm(g / np.linalg.norm(g) - etf)
    out["per_class_nc1"] = [per_nc1.get(c) for c in range(k)]
    out["per_class_var"] = [var[c] if c in multi else None for c in range(k)]
    if w is not None:
        w = np.asarray(w, dtype=np.float64)
        wp = w[classes]
        out["nc3"] = np.linalg.norm(wp / np.linalg.norm(wp) - mt / np.linalg.norm(mt)) ** 2
        wm = wp @ mt.T
        out["nc3_zhu"] = np.linalg.norm(wm / np.linalg.norm(wm) - etf)
        bb = np.zeros(k) if b is None else np.asarray(b, dtype=np.float64)
        out["nc4_bias"] = np.linalg.norm(w @ mu_g + bb)
        mism = 0
        for i in range(n):
            lin = np.argmax(w @ h[i] + bb)
            ncc = classes[int(np.argmin([np.sum((h[i] - mu[c]) ** 2) for c in classes]))]
            mism += lin != ncc
        out["nc4"] = mism / n
        out["align_cos"] = [
            float(w[c] @ (mu[c] - mu_g) / (np.linalg.norm(w[c]) * np.linalg.norm(mu[c] - mu_g)))
            for c in classes
        ]
        ee = []
        for i in range(kp):
            for j in range(i + 1, kp):
                dw, dm = wp[i] - wp[j], mt[i] - mt[j]
                ee.append((dw @ dm) ** 2 / (dw @ dw * (dm @ dm)))
        out["ee_ratio_min"], out["ee_ratio_mean"] = min(ee), np.mean(ee)
        qw = np.linalg.svd(wp, full_matrices=False)[2]
        qm = np.linalg.svd(mt, full_matrices=False)[2]
        rw = np.linalg.matrix_rank(wp)
        rm = np.linalg.matrix_rank(mt)
        sv = np.clip(np.linalg.svd(qw[:rw] @ qm[:rm].T, compute_uv=False), 0, 1)
        out["principal_angles_deg"] = np.degrees(np.arccos(sv))
    cnt = counts if counts is not None else [int((y == c).sum()) for c in range(k)]
    groups = {
        "many": [c for c in range(k) if cnt[c] > many],
        "medium": [c for c in range(k) if few <= cnt[c] <= many],
        "few": [c for c in range(k) if cnt[c] < few],
    }
    out["groups"] = {}
    for name, members in groups.items():
        gm = {}
        pm = [c for c in members if c in classes]
        if len(pm) >= 2:
            cs = []
            for i, a in enumerate(pm):
                for bb in pm[i + 1 :]:
                    va, vb = mu[a] - mu_g, mu[bb] - mu_g
                    cs.append(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))
            gm["mean_cos"] = np.mean(cs)
            if w is not None:
                cw = [
                    w[a] @ w[bb] / (np.linalg.norm(w[a]) * np.linalg.norm(w[bb]))
                    for i, a in enumerate(pm)
                    for bb in pm[i + 1 :]
                ]
                gm["w_cos"] = np.mean(cw)
        out["groups"][name] = gm
    return out


def long_tailed(k=6, d=5, seed=0, counts=None, offset=0.0, spread=1.0):
    rng = np.random.default_rng(seed)
    counts = counts or [max(2, int(40 * 0.6**i)) for i in range(k)]
    centres = rng.normal(size=(k, d)) * 3
    h = np.concatenate([centres[c] + spread * rng.normal(size=(n, d)) for c, n in enumerate(counts)]) + offset
    y = np.repeat(np.arange(k), counts)
    perm = rng.permutation(len(y))
    w = rng.normal(size=(k, d))
    b = rng.normal(size=k)
    return h[perm], y[perm], w, b, counts


def ill_conditioned_means(k=10, d=16, n=30, small=1e-4, spread=0.1, seed=0):
    """Class means whose centred matrix has singular values 10, 9, ..., and one ``small`` times the
    largest (Sigma_B's last eigenvalue is small^2 of its largest), and within-class noise whose sample
    mean is exactly zero in each class, so the class means are exactly the designed ones."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(k, k)))
    c = np.eye(k) - 1.0 / k
    uc = np.linalg.qr(c @ u[:, : k - 1])[0]  # (K, K-1) orthonormal, columns orthogonal to 1
    v, _ = np.linalg.qr(rng.normal(size=(d, k - 1)))
    sv = np.linspace(10.0, 3.0, k - 1)
    sv[-1] = 10.0 * small
    means = uc @ np.diag(sv) @ v.T + rng.normal(size=d)  # equal counts: centred = uc S V^T
    noise = spread * rng.normal(size=(k, n, d))
    noise -= noise.mean(1, keepdims=True)
    h = (means[:, None, :] + noise).reshape(k * n, d)
    y = np.repeat(np.arange(k), n)
    return h, y
