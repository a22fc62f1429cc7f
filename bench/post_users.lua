-- wrk: POST /users with a valid body (the 201 path of the validation handler).
wrk.method = "POST"
wrk.body = '{"email":"ada@example.com","name":"Ada"}'
wrk.headers["Content-Type"] = "application/json"
