// pqa-gen: writes a synthetic Segment-spec event stream (libs/synth) to stdout as JSON lines.
//   pqa-gen [--events N] [--accounts N] [--seed S] ... > events.jsonl   (pqa-gen --help)
#include <cstdio>
#include <string_view>

#include "pqa/synth/generator.h"

int main(int argc, char** argv) {
  pqa::synth::Options options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i], value;
    if (arg == "--help" || arg == "-h") {
      std::fwrite(pqa::synth::usage().data(), 1, pqa::synth::usage().size(), stdout);
      return 0;
    }
    if (const auto eq = arg.find('='); eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    }
    if (!pqa::synth::set_option(options, arg, value)) {
      std::fprintf(stderr, "pqa-gen: bad flag or value: %.*s %.*s\n", static_cast<int>(arg.size()),
                   arg.data(), static_cast<int>(value.size()), value.data());
      std::fwrite(pqa::synth::usage().data(), 1, pqa::synth::usage().size(), stderr);
      return 2;
    }
  }
  bool failed = false;
  pqa::synth::generate(options, [&](std::string_view chunk) {
    if (!failed && std::fwrite(chunk.data(), 1, chunk.size(), stdout) != chunk.size()) {
      std::perror("pqa-gen: write failed");
      failed = true;
    }
  });
  return failed ? 1 : 0;
}
