-- wrk script: POST one body (path in $IMAGE, type in $IMAGE_TYPE) to the URL.
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("IMAGE_TYPE") or "image/jpeg"
-- a v2 binary tensor request: where its JSON ends
if os.getenv("INFER_HEADER_LENGTH") then
  wrk.headers["Inference-Header-Content-Length"] = os.getenv("INFER_HEADER_LENGTH")
end
local f = assert(io.open(os.getenv("IMAGE"), "rb"))
wrk.body = f:read("*all")
f:close()
