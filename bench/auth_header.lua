-- The token the benchmark's authorizer routes need (the same on every request: the cached
-- route answers from the authorizer cache after the first one).
wrk.headers["Authorization"] = "Bearer bench-token"
