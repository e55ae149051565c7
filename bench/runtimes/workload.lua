-- Allocation-heavy Lua for obm's runtime benchmark: binary trees, string
-- building and table churn. Deterministic; prints a digest of each phase,
-- so runs under different allocators can be compared byte for byte.
--
--   lua5.4 workload.lua [SCALE]     (SCALE: 1 by default, 0.05 for tests)

local SCALE = tonumber(arg and arg[1]) or 1.0

local function n(k)
  return math.max(1, math.floor(k * SCALE))
end

local function make_tree(depth)
  if depth == 0 then return {} end
  depth = depth - 1
  return { make_tree(depth), make_tree(depth) }
end

local function check_tree(t)
  if t[1] == nil then return 1 end
  return 1 + check_tree(t[1]) + check_tree(t[2])
end

local function trees()
  local max_depth = SCALE >= 1 and 14 or 10
  local long_lived = make_tree(max_depth)
  local total = 0
  for depth = 4, max_depth, 2 do
    for _ = 1, n(2 ^ (max_depth - depth + 4) // 4) do
      total = total + check_tree(make_tree(depth))
    end
  end
  return total + check_tree(long_lived)
end

local function strings()
  local total = 0
  for i = 1, n(300000) do
    local s = "key" .. i .. ":" .. (i % 97) .. "/" .. string.rep("x", i % 40)
    total = total + #s
  end
  local parts = {}
  for i = 1, n(200000) do parts[#parts + 1] = tostring(i % 1000) end
  local joined = table.concat(parts, ",")
  local count = 0
  for _ in joined:gmatch("[^,]+") do count = count + 1 end
  return total, #joined, count
end

local function tables()
  local live = {}
  local total = 0
  for i = 1, n(800000) do
    local rec = { id = i, name = "item" .. (i % 5000), tags = { i % 7, i % 11, i % 13 } }
    total = total + rec.tags[1] + rec.tags[2] + rec.tags[3]
    live[i % 4096] = rec
  end
  local keys = 0
  for _ in pairs(live) do keys = keys + 1 end
  return total, keys
end

print("trees:", trees())
print("strings:", strings())
print("tables:", tables())
