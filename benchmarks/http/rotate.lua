-- wrk script: GET the path with "<header>: <prefix><token>" (default "Authorization: Bearer "),
-- rotating through the tokens of a file (one per line). Arguments after `--`: the file,
-- then optionally the header and the prefix. Each thread starts at a random offset, so a few
-- hot tokens are spread and, run after run, all of 10,000 are visited (a run of a few
-- seconds visits a few thousand, each once, in order).
local tokens = {}
local index = 0
local threads = 0
local header = "Authorization"
local prefix = "Bearer "

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
  if args[2] then
    header = args[2]
    prefix = args[3] or ""
  end
  math.randomseed(os.time() * 7919 + (id or 0))
  index = math.random(#tokens) - 1
end

function request()
  index = index % #tokens + 1
  return wrk.format("GET", wrk.path, { [header] = prefix .. tokens[index] })
end
