"""Where an LSTM forward pass spends its time on this CPU: the per-step matmuls or the gates.

Times, interleaved over 15 rounds (medians), a jitted fnnet.LSTM(128) forward at batch 64,
length 200, against the same plain-JAX `[x_t, h] @ W` scan with and without the gates'
element-wise maths. Run: ``JAX_PLATFORMS=cpu python scripts/profile_lstm.py``.
"""
import time, jax, jax.numpy as jnp, numpy as np, fnnet
B, T, D, U = 64, 200, 128, 128
x = jax.random.normal(jax.random.PRNGKey(0), (B, T, D))
W = jax.random.normal(jax.random.PRNGKey(1), (D + U, 4 * U)) * 0.05
b = jnp.zeros(4 * U)

def run(step):
    def f(W, b, x):  # weights as arguments, as in a model, so XLA cannot fold them in
        def body(carry, xt):
            h, c = carry
            z = jnp.concatenate([xt, h], -1) @ W + b
            return step(z, c), None
        (h, c), _ = jax.lax.scan(body, (jnp.zeros((B, U)), jnp.zeros((B, U))), jnp.swapaxes(x, 0, 1))
        return h
    return jax.jit(f)

def full(z, c):
    i, f, g, o = jnp.split(z, 4, -1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c

def matmul_only(z, c):
    # Keeps the recurrence and every column of the matmul (a bare slice would let XLA drop
    # three quarters of it), replacing the gates' sigmoids/tanhs by three additions.
    return z[:, :U] + z[:, U:2 * U] + z[:, 2 * U:3 * U] + z[:, 3 * U:], c

model = fnnet.LSTM(U)
_, p = model.init(jax.random.PRNGKey(0), (-1, T, D))
fn_fnnet = jax.jit(model.apply)
cands = {"fnnet.LSTM forward": lambda: fn_fnnet(p, x),
         "scan, full gates": (lambda g: lambda: g(W, b, x))(run(full)),
         "scan, matmul only": (lambda g: lambda: g(W, b, x))(run(matmul_only))}
for f in cands.values():
    f().block_until_ready()
times = {k: [] for k in cands}
for _ in range(15):
    for k, f in cands.items():
        t = time.perf_counter(); f().block_until_ready(); times[k].append(time.perf_counter() - t)
for k, v in times.items():
    print(f"{k:22s} {np.median(v)*1e3:7.2f} ms")
