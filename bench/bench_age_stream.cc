/*
 * age STREAM (ChaCha20-Poly1305, 64 KiB chunks): a whole payload sealed or
 * opened per iteration, at 64 KiB and 16 MiB. bytes_per_second counts
 * plaintext bytes.
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

template <typename F> void stream_bench(benchmark::State &state, F op)
{
	struct rp_status st = {};
	struct rp_bench_stream *b = nullptr;

	if (rp_bench_stream_new(&b, &st, static_cast<size_t>(state.range(0))) !=
		    RP_OK ||
	    rp_bench_stream_check(b, &st) != RP_OK) {
		state.SkipWithError(st.msg);
		rp_bench_stream_free(b);
		return;
	}
	timed(state, st, [&] { return op(b, &st); });
	state.SetBytesProcessed(state.iterations() * state.range(0));
	rp_bench_stream_free(b);
}

void age_stream_seal(benchmark::State &state)
{
	stream_bench(state, rp_bench_stream_seal);
}

void age_stream_open(benchmark::State &state)
{
	stream_bench(state, rp_bench_stream_open);
}

} // namespace

BENCHMARK(age_stream_seal)
	->Arg(64 << 10)
	->Arg(16 << 20)
	->Unit(benchmark::kMicrosecond);
BENCHMARK(age_stream_open)
	->Arg(64 << 10)
	->Arg(16 << 20)
	->Unit(benchmark::kMicrosecond);
