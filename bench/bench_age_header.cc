/*
 * age header: parse of a real two-stanza header (ssh-rsa RSA-2048, then
 * an rp-license of about 1 KB), with and without the MAC check, and
 * writing it again (both stanzas and the MAC).
 */
#include <benchmark/benchmark.h>

#include "bench_fns.h"

namespace
{

/* timed runs `op` once per iteration; a failure fails the benchmark */
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

template <typename F> void hdr_bench(benchmark::State &state, F op)
{
	struct rp_status st = {};
	struct rp_bench_hdr *h = nullptr;

	if (rp_bench_hdr_new(&h, &st) != RP_OK ||
	    rp_bench_hdr_check(h, &st) != RP_OK) {
		state.SkipWithError(st.msg);
		rp_bench_hdr_free(h);
		return;
	}
	timed(state, st, [&] { return op(h, &st); });
	state.SetItemsProcessed(state.iterations());
	state.SetBytesProcessed(state.iterations() *
				static_cast<int64_t>(rp_bench_hdr_len(h)));
	state.counters["hdr_bytes"] = static_cast<double>(rp_bench_hdr_len(h));
	state.counters["license_bytes"] =
		static_cast<double>(rp_bench_hdr_license_len(h));
	rp_bench_hdr_free(h);
}

void age_header_parse(benchmark::State &state)
{
	hdr_bench(state, rp_bench_hdr_parse);
}

void age_header_parse_mac(benchmark::State &state)
{
	hdr_bench(state, rp_bench_hdr_parse_mac);
}

void age_header_write_mac(benchmark::State &state)
{
	hdr_bench(state, rp_bench_hdr_write);
}

} // namespace

BENCHMARK(age_header_parse);
BENCHMARK(age_header_parse_mac);
BENCHMARK(age_header_write_mac);
