-- wrk script: a non-streamed chat completion through a proxy (bench/proxy.py) or to the fake backend;
-- BENCH_AUTHORIZATION, when set, is sent as the Authorization header (LiteLLM's master key)
wrk.method = "POST"
wrk.body = '{"model": "bench-model", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello from wrk, how are you today?"}]}'
wrk.headers["Content-Type"] = "application/json"
if os.getenv("BENCH_AUTHORIZATION") then
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTHORIZATION")
end
