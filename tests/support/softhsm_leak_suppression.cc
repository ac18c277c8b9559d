// Linked into the test programs that sign inside SoftHSM2. SoftHSM2 2.6.1's EdDSA sign path leaks
// one ASN.1 string per signature inside the module (our calls free what they own). Sanitizer
// builds keep the module mapped (hsm/hsm.cc, RTLD_NODELETE) and these hooks give LeakSanitizer
// full stacks through the module's frames, so only leaks inside libsofthsm2.so are suppressed.
// Outside sanitizer builds nothing calls them.
extern "C" const char* __asan_default_options() { return "fast_unwind_on_malloc=0"; }
extern "C" const char* __lsan_default_suppressions() { return "leak:libsofthsm2.so\n"; }
