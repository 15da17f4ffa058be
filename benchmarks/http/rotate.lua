-- wrk script: GET the path with "Authorization: Bearer <token>", rotating through the tokens
-- of a file (one per line; its path is the first argument after `--`). Each thread starts
-- at its own offset, so a few hot tokens are spread and 10,000 are all visited.
local tokens = {}
local index = 0
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      tokens[#tokens + 1] = line
    end
  end
  index = ((id or 0) * 7919) % #tokens
end

function request()
  index = index % #tokens + 1
  return wrk.format("GET", wrk.path, { ["Authorization"] = "Bearer " .. tokens[index] })
end
