local page = string.rep("x", 4096)
local hog = {}
while true do
  hog[#hog + 1] = string.rep(page, 4096)
end
