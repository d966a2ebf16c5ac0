-- wrk script: the example POST endpoint with a small valid body
wrk.method = "POST"
wrk.body = '{"input": "hello from wrk", "repeat": 2}'
wrk.headers["Content-Type"] = "application/json"
