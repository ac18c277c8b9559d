// Random edits of a text (replace, insert or delete characters from an alphabet), for tests that
// check a fast validator against a reference implementation on near-valid inputs.
#pragma once

#include <cstddef>
#include <random>
#include <string>
#include <string_view>

namespace lockbox::testing {

// 1 to `max_edits` edits of `seed`, each at a random position with a character of `alphabet`.
inline std::string RandomEdits(const std::string& seed, std::string_view alphabet, int max_edits,
                               std::mt19937& rng) {
  std::string t = seed;
  const int edits = 1 + static_cast<int>(rng() % static_cast<unsigned>(max_edits));
  for (int k = 0; k < edits && !t.empty(); ++k) {
    const std::size_t at = rng() % t.size();
    const char c = alphabet[rng() % alphabet.size()];
    switch (rng() % 3) {
      case 0:
        t[at] = c;
        break;
      case 1:
        t.insert(t.begin() + static_cast<std::ptrdiff_t>(at), c);
        break;
      default:
        t.erase(at, 1);
    }
  }
  return t;
}

}  // namespace lockbox::testing
