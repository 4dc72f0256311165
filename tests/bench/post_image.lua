-- wrk script: POST one image (path in $IMAGE, type in $IMAGE_TYPE) to the URL.
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("IMAGE_TYPE") or "image/jpeg"
local f = assert(io.open(os.getenv("IMAGE"), "rb"))
wrk.body = f:read("*all")
f:close()
