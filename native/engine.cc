// The only file in native/ that calls V8 or node:: directly. See engine.h for the contract.
#include "engine.h"

// node.h defines the N-API version of its own release; this file uses no N-API newer than the rest.
#undef NAPI_VERSION
#include <node.h>
#include <v8.h>

#include <cstring>
#include <limits>

#include "context.h"

namespace spindle {

struct Engine::Impl {
  v8::Isolate* isolate;
  v8::Global<v8::Context> context;
  napi_ref trampoline = nullptr;
  v8::Global<v8::Object> scope_resource;  // the async resource of dispatch callback scopes
};

namespace {

using Frame = v8::Global<v8::Value>;

#if V8_MAJOR_VERSION >= 14
v8::Local<v8::Value> current_frame(v8::Isolate* isolate) {
  v8::Local<v8::Data> data = isolate->GetContinuationPreservedEmbedderDataV2();
  if (data.IsEmpty() || !data->IsValue()) return v8::Undefined(isolate);
  return data.As<v8::Value>();
}
void set_frame(v8::Isolate* isolate, v8::Local<v8::Value> value) {
  isolate->SetContinuationPreservedEmbedderDataV2(value);
}
#elif V8_MAJOR_VERSION >= 12
v8::Local<v8::Value> current_frame(v8::Isolate* isolate) {
  return isolate->GetContinuationPreservedEmbedderData();
}
void set_frame(v8::Isolate* isolate, v8::Local<v8::Value> value) {
  isolate->SetContinuationPreservedEmbedderData(value);
}
#endif

}  // namespace

Engine::Engine(napi_env env, napi_value trampoline) : env_(env), impl_(new Impl) {
  impl_->isolate = v8::Isolate::GetCurrent();
  v8::HandleScope scope(impl_->isolate);
  impl_->context.Reset(impl_->isolate, impl_->isolate->GetCurrentContext());
  impl_->scope_resource.Reset(impl_->isolate, v8::Object::New(impl_->isolate));
  napi_create_reference(env, trampoline, 1, &impl_->trampoline);
}

Engine::~Engine() {
  if (impl_->trampoline != nullptr) napi_delete_reference(env_, impl_->trampoline);
  delete impl_;
}

void Engine::run_on_carrier(uintptr_t stack_low, size_t reserve, void (*body)(void*), void* arg) {
  v8::Isolate* isolate = impl_->isolate;
  v8::Locker locker(isolate);
  isolate->Enter();
  // V8 derives a new thread's limit from its stack position minus --stack-size, which would not fit
  // a small carrier stack: set it from the real bounds, leaving `reserve` for native frames.
  isolate->SetStackLimit(stack_low + reserve);
  {
    v8::HandleScope handles(isolate);
    v8::Local<v8::Context> context = impl_->context.Get(isolate);
    v8::Context::Scope context_scope(context);
    body(arg);
  }
  isolate->Exit();
}

bool Engine::call_trampoline(uint32_t handle) {
  v8::Isolate* isolate = impl_->isolate;
  v8::HandleScope handles(isolate);
  napi_value fn = nullptr, recv = nullptr, arg = nullptr, result = nullptr;
  napi_get_reference_value(env_, impl_->trampoline, &fn);
  napi_get_undefined(env_, &recv);
  napi_create_uint32(env_, handle, &arg);
  napi_status status = napi_call_function(env_, recv, fn, 1, &arg, &result);
  if (status != napi_ok) {
    // The trampoline catches everything it can: what reaches here is termination (or a JS engine
    // refusing to run at teardown). Clear N-API's pending slot so no later call trips over it.
    napi_value ignored = nullptr;
    napi_get_and_clear_last_exception(env_, &ignored);
  }
  return !isolate->IsExecutionTerminating();
}

void Engine::unlocked(bool on_loop_thread, void (*wait)(void*), void* arg) {
  v8::Isolate* isolate = impl_->isolate;
  if (!on_loop_thread) isolate->Exit();
  {
    v8::Unlocker unlocker(isolate);
    wait(arg);
    // wait() returns once this thread holds the runner role again, so nothing else touches the
    // isolate now: enter it before ~Unlocker relocks. Relocking restores this thread's debugger state
    // (a breakpoint set by location, a pending step are re-applied), which needs the current isolate:
    // entered after the lock, V8 crashed there with the inspector attached.
    if (!on_loop_thread) isolate->Enter();
  }
}

void Engine::in_callback_scope(void (*body)(void*), void* arg) {
  v8::Isolate* isolate = impl_->isolate;
  v8::HandleScope handles(isolate);
  v8::Local<v8::Context> context = impl_->context.Get(isolate);
  v8::Context::Scope context_scope(context);
  node::CallbackScope callback_scope(isolate, impl_->scope_resource.Get(isolate), {0, 0});
  body(arg);
}

void Engine::switch_frames(Context& from, void (*do_switch)(void*), void* arg) {
  // One scope for the whole switch: re-locking may create handles too (Node 24's V8 does).
  v8::HandleScope handles(impl_->isolate);
  capture_frame(from);
  do_switch(arg);
  restore_frame(from);
}

void Engine::capture_frame(Context& ctx) {
#if V8_MAJOR_VERSION >= 12
  v8::Isolate* isolate = impl_->isolate;
  v8::Local<v8::Value> value = current_frame(isolate);
  auto* frame = static_cast<Frame*>(ctx.saved_frame);
  // Every switch captures; the frame rarely changes between two: spare the global handle's churn.
  if (value->IsUndefined()) {
    if (frame != nullptr) frame->Reset();
    return;
  }
  if (frame == nullptr) ctx.saved_frame = frame = new Frame();
  if (*frame != value) frame->Reset(isolate, value);
#else
  (void)ctx;
#endif
}

void Engine::restore_frame(Context& ctx) {
#if V8_MAJOR_VERSION >= 12
  v8::Isolate* isolate = impl_->isolate;
  auto* frame = static_cast<Frame*>(ctx.saved_frame);
  set_frame(isolate, frame == nullptr || frame->IsEmpty() ? v8::Undefined(isolate).As<v8::Value>()
                                                          : frame->Get(isolate));
#else
  (void)ctx;
#endif
}

void Engine::release_frame(Context& ctx) {
  delete static_cast<Frame*>(ctx.saved_frame);
  ctx.saved_frame = nullptr;
}

namespace {

void hot_callback(const v8::FunctionCallbackInfo<v8::Value>& info) {
  auto* entry = static_cast<const HotEntry*>(info.Data().As<v8::External>()->Value());
  double arg = std::numeric_limits<double>::quiet_NaN();
  if (info.Length() > 0 && info[0]->IsNumber()) arg = info[0].As<v8::Number>()->Value();
  HotError error;
  uint32_t result = entry->fn(entry->data, arg, &error);
  if (error.code == nullptr) {
    if (entry->returns) info.GetReturnValue().Set(result);
    return;
  }
  // Thrown here, not with io.h's throw_error: napi_throw runs inside N-API's own try/catch, which
  // keeps the exception for the end of the current N-API callback, and this is none.
  v8::Isolate* isolate = info.GetIsolate();
  // A pending termination (a Worker stopping) wins over this error: nothing may run, not even a throw.
  if (isolate->IsExecutionTerminating()) return;
  v8::Local<v8::String> message;
  v8::Local<v8::String> code;
  if (!v8::String::NewFromUtf8(isolate, error.message).ToLocal(&message) ||
      !v8::String::NewFromUtf8(isolate, error.code).ToLocal(&code)) {
    return;
  }
  v8::Local<v8::Value> exception = v8::Exception::Error(message);
  if (exception->IsObject()) {
    v8::Local<v8::String> key = v8::String::NewFromUtf8Literal(isolate, "code");
    bool set = exception.As<v8::Object>()->Set(isolate->GetCurrentContext(), key, code).FromMaybe(false);
    (void)set;  // without its code the error still says what went wrong
  }
  isolate->ThrowException(exception);
}

}  // namespace

napi_value hot_function(napi_env env, const char* name, const HotEntry* entry) {
  (void)env;  // the isolate and context are the current ones during module init
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  v8::EscapableHandleScope scope(isolate);
  v8::Local<v8::External> data = v8::External::New(isolate, const_cast<HotEntry*>(entry));
  v8::Local<v8::Function> function;
  v8::Local<v8::String> v8_name;
  if (!v8::Function::New(isolate->GetCurrentContext(), hot_callback, data).ToLocal(&function) ||
      !v8::String::NewFromUtf8(isolate, name).ToLocal(&v8_name)) {
    return nullptr;
  }
  function->SetName(v8_name);
  // A napi_value is a v8::Local<v8::Value>'s handle location (node's js_native_api_v8.h converts the
  // two the same way), valid in the N-API call's handle scope like any napi_value.
  v8::Local<v8::Value> value = scope.Escape(function);
  napi_value out = nullptr;
  static_assert(sizeof(out) == sizeof(value));
  std::memcpy(&out, &value, sizeof(out));
  return out;
}

void Engine::terminate() { impl_->isolate->TerminateExecution(); }

void Engine::discard_thread_data() { impl_->isolate->DiscardThreadSpecificMetadata(); }

}  // namespace spindle
