/*
 * License signing per document at batch sizes 1, 64 and 1024: N TBS
 * encodings, N leaves, the Merkle tree, ONE RSA-2048 PSS signature, N
 * audit paths, N license encodings. items_per_second is documents/s.
 * Then the per-document cost of verifying (decode + leaf + path + RSA
 * verify) in a batch of 1 and of 1024.
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

struct rp_bench_lic *lic_setup(benchmark::State &state, struct rp_status *st)
{
	const auto num_docs = static_cast<size_t>(state.range(0));
	struct rp_bench_lic *l = nullptr;

	if (rp_bench_lic_new(&l, st, num_docs) != RP_OK ||
	    rp_bench_lic_check(l, st) != RP_OK) {
		state.SkipWithError(st->msg);
		rp_bench_lic_free(l);
		return nullptr;
	}
	return l;
}

void license_sign_batch(benchmark::State &state)
{
	struct rp_status st = {};
	struct rp_bench_lic *l = lic_setup(state, &st);

	if (!l) {
		return;
	}
	timed(state, st, [&] { return rp_bench_lic_sign_batch(l, &st); });
	state.SetItemsProcessed(state.iterations() * state.range(0));
	rp_bench_lic_free(l);
}

void license_verify(benchmark::State &state)
{
	struct rp_status st = {};
	struct rp_bench_lic *l = lic_setup(state, &st);
	size_t idx = 0;

	if (!l) {
		return;
	}
	timed(state, st, [&] { return rp_bench_lic_verify(l, &st, idx++); });
	state.SetItemsProcessed(state.iterations());
	rp_bench_lic_free(l);
}

} // namespace

BENCHMARK(license_sign_batch)
	->Arg(1)
	->Arg(64)
	->Arg(1024)
	->Unit(benchmark::kMicrosecond);
BENCHMARK(license_verify)->Arg(1)->Arg(1024)->Unit(benchmark::kMicrosecond);
