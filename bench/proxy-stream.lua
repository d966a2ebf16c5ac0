-- wrk script: a streamed chat completion through a proxy (bench/proxy.py) or to the fake backend, which
-- streams 20 chunks, a usage chunk and [DONE] at once; BENCH_AUTHORIZATION as in proxy-chat.lua
wrk.method = "POST"
wrk.body = '{"model": "bench-model", "stream": true, "messages": [{"role": "user", "content": "hello from wrk"}]}'
wrk.headers["Content-Type"] = "application/json"
if os.getenv("BENCH_AUTHORIZATION") then
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTHORIZATION")
end
