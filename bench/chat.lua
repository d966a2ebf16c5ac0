-- wrk script: a non-streaming chat completion with a short conversation
wrk.method = "POST"
wrk.body = '{"model": "example-chat", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello from wrk, how are you today?"}]}'
wrk.headers["Content-Type"] = "application/json"
