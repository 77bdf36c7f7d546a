/*
 * Recipient stanzas, one file key per iteration: ssh-rsa (RSA-2048 OAEP)
 * unwrap, the private op the engine is bound by, and wrap; X25519 wrap and
 * unwrap. items_per_second is stanzas/s.
 */
#include <benchmark/benchmark.h>

#include "bench_fns.h"

namespace
{

template <typename F>
void timed(benchmark::State &state, const struct rp_status &st, F op)
{
	unsigned bad = 0;

	for (auto _ : state) {
		const enum rp_err err = op();
		benchmark::DoNotOptimize(err);
		bad |= static_cast<unsigned>(err);
	}
	if (bad) {
		state.SkipWithError(st.msg[0] ? st.msg : "failed in the loop");
	}
}

template <typename F> void recip_bench(benchmark::State &state, F op)
{
	struct rp_status st = {};
	struct rp_bench_recip *r = nullptr;

	if (rp_bench_recip_new(&r, &st) != RP_OK ||
	    rp_bench_recip_check(r, &st) != RP_OK) {
		state.SkipWithError(st.msg);
		rp_bench_recip_free(r);
		return;
	}
	timed(state, st, [&] { return op(r, &st); });
	state.SetItemsProcessed(state.iterations());
	rp_bench_recip_free(r);
}

void sshrsa_unwrap(benchmark::State &state)
{
	recip_bench(state, rp_bench_rsa_unwrap);
}

void sshrsa_wrap(benchmark::State &state)
{
	recip_bench(state, rp_bench_rsa_wrap);
}

void x25519_unwrap(benchmark::State &state)
{
	recip_bench(state, rp_bench_x25519_unwrap);
}

void x25519_wrap(benchmark::State &state)
{
	recip_bench(state, rp_bench_x25519_wrap);
}

} // namespace

BENCHMARK(sshrsa_unwrap)->Unit(benchmark::kMicrosecond);
BENCHMARK(sshrsa_wrap)->Unit(benchmark::kMicrosecond);
BENCHMARK(x25519_unwrap)->Unit(benchmark::kMicrosecond);
BENCHMARK(x25519_wrap)->Unit(benchmark::kMicrosecond);
