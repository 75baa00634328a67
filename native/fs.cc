// spindle/fs, native half: file system operations on libuv's threadpool (uv_fs_* on the environment's
// loop), each an IoOp started for the running fiber. The callback (loop thread) records the result and
// wakes the fiber; JavaScript (src/fs/index.ts) parks in awaitIo and then reads the result: a byte
// count, a file descriptor, stat fields, directory entries or a path. Errors come back as negative
// libuv error numbers (Node's errno values); JavaScript builds the Node-style Error.
//
// Ownership: JavaScript holds each operation through a napi_external whose finalizer frees it, but only
// once libuv is done with it: a finalizer that finds it in flight (its fiber was unwound at environment
// teardown) leaves it to the callback. The buffer a read fills or a write sends is held by a strong
// reference while the operation is in flight, so the threadpool never touches memory the GC freed.
// Every started operation is tracked (io.h): teardown cancels and drains them before the scheduler goes.
#include <napi.h>
#include <uv.h>

#include <string>

#include "io.h"

namespace spindle {
namespace {

enum class Kind { kPlain, kStat, kScandir, kRealpath };

class FsOp final : public IoOp {
 public:
  FsOp(Scheduler& scheduler, Kind kind) : IoOp(scheduler), kind_(kind) { req_.data = this; }
  ~FsOp() override {
    if (started_) uv_fs_req_cleanup(&req_);
  }

  uv_fs_t* req() { return &req_; }
  Kind kind() const { return kind_; }
  int64_t result() const { return result_; }

  // After the uv_fs_* call: `rc` < 0 means libuv refused it (no callback will come).
  void started(int rc) {
    if (rc < 0) {
      result_ = rc;
      done_ = true;
      return;
    }
    started_ = true;
    track();
  }

  void cancel() override {
    if (started_ && !done_) uv_cancel(reinterpret_cast<uv_req_t*>(&req_));
  }

  void hold_buffer(napi_env env, napi_value buffer) { napi_create_reference(env, buffer, 1, &buffer_); }
  void release_buffer(napi_env env) {
    if (buffer_ == nullptr) return;
    napi_delete_reference(env, buffer_);
    buffer_ = nullptr;
  }

  // The JavaScript handle was collected.
  void release_from_js(napi_env env) {
    if (done_) {
      release_buffer(env);
      delete this;
      return;
    }
    // In flight (its fiber was unwound): the callback frees it. The buffer reference stays until the
    // environment frees its references: the threadpool may still be writing into that memory.
    orphan_ = true;
  }

  static void on_done(uv_fs_t* req) {
    auto* op = static_cast<FsOp*>(req->data);
    op->result_ = req->result;
    const bool orphan = op->orphan_;
    op->finish(req->result == UV_ECANCELED);  // the scheduler may be gone after this (teardown)
    if (orphan) delete op;
  }

 private:
  uv_fs_t req_{};
  const Kind kind_;
  int64_t result_ = 0;
  bool started_ = false;
  bool orphan_ = false;
  napi_ref buffer_ = nullptr;
};

uv_loop_t* loop_of(napi_env env) {
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  return loop;
}

// Throws an Error with `code`. Raw N-API, ignoring failures: fibers may still run JavaScript while a
// Worker is being terminated (the environment no longer lets native code throw), and node-addon-api's
// throwing helpers abort the process when napi_throw fails.
Napi::Value fail(napi_env env, const char* code, const char* message) {
  napi_value msg, code_value, error;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) == napi_ok &&
      napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value) == napi_ok &&
      napi_create_error(env, code_value, msg, &error) == napi_ok) {
    napi_throw(env, error);
  }
  return Napi::Value();
}

// The new operation for the running fiber, or nullptr with an exception pending.
FsOp* new_op(const Napi::CallbackInfo& info, Kind kind) {
  Scheduler* scheduler = scheduler_of(info.Env());
  if (scheduler == nullptr) {
    fail(info.Env(), "ERR_FIBER_TERMINATING", "spindle's native core is not running (not initialized, or torn down)");
    return nullptr;
  }
  if (scheduler->running_handle() == 0) {
    fail(info.Env(), "ERR_NOT_IN_FIBER", "file system operations suspend the current fiber and must run inside one");
    return nullptr;
  }
  return new FsOp(*scheduler, kind);
}

// The JavaScript handle of a new operation (before it starts), or nullptr (the operation deleted) when
// the environment refuses to create one (a terminating Worker): JavaScript then gets undefined.
napi_value wrap(napi_env env, FsOp* op) {
  napi_value handle = nullptr;
  auto finalize = [](napi_env e, void* data, void*) { static_cast<FsOp*>(data)->release_from_js(e); };
  if (napi_create_external(env, op, finalize, nullptr, &handle) != napi_ok) {
    delete op;
    return nullptr;
  }
  return handle;
}

FsOp* unwrap(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsExternal()) {
    fail(info.Env(), "ERR_INVALID_ARG_TYPE", "expected a file system operation");
    return nullptr;
  }
  return info[0].As<Napi::External<FsOp>>().Data();
}

std::string str(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::String>().Utf8Value(); }
int32_t i32(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }
int64_t i64(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int64Value(); }

// The bytes of an ArrayBufferView argument.
bool view(const Napi::CallbackInfo& info, size_t i, char** data, size_t* length) {
  napi_env env = info.Env();
  napi_value v = info[i];
  bool is = false;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t count = 0, offset = 0;
    void* base = nullptr;
    napi_value ab;
    napi_get_typedarray_info(env, v, &type, &count, &base, &ab, &offset);
    size_t width = 1;
    switch (type) {
      case napi_int16_array:
      case napi_uint16_array:
        width = 2;
        break;
      case napi_int32_array:
      case napi_uint32_array:
      case napi_float32_array:
        width = 4;
        break;
      case napi_float64_array:
      case napi_bigint64_array:
      case napi_biguint64_array:
        width = 8;
        break;
      default:
        break;
    }
    *data = static_cast<char*>(base);
    *length = count * width;
    return true;
  }
  if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    void* base = nullptr;
    napi_value ab;
    size_t offset = 0;
    napi_get_dataview_info(env, v, length, &base, &ab, &offset);
    *data = static_cast<char*>(base);
    return true;
  }
  fail(info.Env(), "ERR_INVALID_ARG_TYPE", "expected a Buffer, TypedArray or DataView");
  return false;
}

// The JavaScript side checked the arguments' types and ranges; these start the operations.
#define START(kind, call)                        \
  FsOp* op = new_op(info, kind);                 \
  if (op == nullptr) return Napi::Value();       \
  napi_value handle = wrap(info.Env(), op);      \
  if (handle == nullptr) return Napi::Value();   \
  op->started(call);                             \
  return Napi::Value(info.Env(), handle)

Napi::Value Open(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kPlain, uv_fs_open(loop_of(info.Env()), op->req(), path.c_str(), i32(info, 1), i32(info, 2), FsOp::on_done));
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  START(Kind::kPlain, uv_fs_close(loop_of(info.Env()), op->req(), i32(info, 0), FsOp::on_done));
}

// read(fd, view, offset, length, position) / write(...): position -1 means the file's current position.
Napi::Value ReadWrite(const Napi::CallbackInfo& info, bool write) {
  char* data = nullptr;
  size_t length = 0;
  if (!view(info, 1, &data, &length)) return Napi::Value();
  const int64_t offset = i64(info, 2);
  const int64_t count = i64(info, 3);
  if (offset < 0 || count < 0 || static_cast<uint64_t>(offset + count) > length) {
    return fail(info.Env(), "ERR_OUT_OF_RANGE", "offset and length exceed the buffer");
  }
  FsOp* op = new_op(info, Kind::kPlain);
  if (op == nullptr) return Napi::Value();
  napi_value handle = wrap(info.Env(), op);
  if (handle == nullptr) return Napi::Value();
  uv_buf_t buf = uv_buf_init(data + offset, static_cast<unsigned int>(count));
  const int rc = write ? uv_fs_write(loop_of(info.Env()), op->req(), i32(info, 0), &buf, 1, i64(info, 4), FsOp::on_done)
                       : uv_fs_read(loop_of(info.Env()), op->req(), i32(info, 0), &buf, 1, i64(info, 4), FsOp::on_done);
  op->started(rc);
  if (rc >= 0) op->hold_buffer(info.Env(), info[1]);
  return Napi::Value(info.Env(), handle);
}

Napi::Value Read(const Napi::CallbackInfo& info) { return ReadWrite(info, false); }
Napi::Value Write(const Napi::CallbackInfo& info) { return ReadWrite(info, true); }

Napi::Value Stat(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kStat, uv_fs_stat(loop_of(info.Env()), op->req(), path.c_str(), FsOp::on_done));
}

Napi::Value Lstat(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kStat, uv_fs_lstat(loop_of(info.Env()), op->req(), path.c_str(), FsOp::on_done));
}

Napi::Value Fstat(const Napi::CallbackInfo& info) {
  START(Kind::kStat, uv_fs_fstat(loop_of(info.Env()), op->req(), i32(info, 0), FsOp::on_done));
}

Napi::Value Ftruncate(const Napi::CallbackInfo& info) {
  START(Kind::kPlain, uv_fs_ftruncate(loop_of(info.Env()), op->req(), i32(info, 0), i64(info, 1), FsOp::on_done));
}

Napi::Value Fsync(const Napi::CallbackInfo& info) {
  START(Kind::kPlain, uv_fs_fsync(loop_of(info.Env()), op->req(), i32(info, 0), FsOp::on_done));
}

Napi::Value Scandir(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kScandir, uv_fs_scandir(loop_of(info.Env()), op->req(), path.c_str(), 0, FsOp::on_done));
}

Napi::Value Mkdir(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kPlain, uv_fs_mkdir(loop_of(info.Env()), op->req(), path.c_str(), i32(info, 1), FsOp::on_done));
}

Napi::Value Rmdir(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kPlain, uv_fs_rmdir(loop_of(info.Env()), op->req(), path.c_str(), FsOp::on_done));
}

Napi::Value Unlink(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kPlain, uv_fs_unlink(loop_of(info.Env()), op->req(), path.c_str(), FsOp::on_done));
}

Napi::Value Rename(const Napi::CallbackInfo& info) {
  std::string from = str(info, 0), to = str(info, 1);
  START(Kind::kPlain, uv_fs_rename(loop_of(info.Env()), op->req(), from.c_str(), to.c_str(), FsOp::on_done));
}

Napi::Value Copyfile(const Napi::CallbackInfo& info) {
  std::string from = str(info, 0), to = str(info, 1);
  START(Kind::kPlain, uv_fs_copyfile(loop_of(info.Env()), op->req(), from.c_str(), to.c_str(), i32(info, 2), FsOp::on_done));
}

Napi::Value Access(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kPlain, uv_fs_access(loop_of(info.Env()), op->req(), path.c_str(), i32(info, 1), FsOp::on_done));
}

Napi::Value Realpath(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kRealpath, uv_fs_realpath(loop_of(info.Env()), op->req(), path.c_str(), FsOp::on_done));
}

#undef START

Napi::Value Done(const Napi::CallbackInfo& info) {
  FsOp* op = unwrap(info);
  return op == nullptr ? Napi::Value() : Napi::Boolean::New(info.Env(), op->done());
}

Napi::Value Cancel(const Napi::CallbackInfo& info) {
  FsOp* op = unwrap(info);
  if (op != nullptr) op->cancel();
  return info.Env().Undefined();
}

Napi::Value Cancelled(const Napi::CallbackInfo& info) {
  FsOp* op = unwrap(info);
  return op == nullptr ? Napi::Value() : Napi::Boolean::New(info.Env(), op->done() && op->cancelled());
}

double ms(const uv_timespec_t& t) { return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6; }

// result(op, out?): once done. A negative number is the libuv error (errno). Otherwise: stat
// operations fill `out` (a Float64Array of 14, in fs.Stats' constructor order) and return 0; scandir
// returns the names (and pushes each entry's uv_dirent_type_t onto `out` when it is an Array); realpath
// returns the path; the others return the result (fd, bytes, 0). Releases the buffer reference.
Napi::Value Result(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FsOp* op = unwrap(info);
  if (op == nullptr) return Napi::Value();
  if (!op->done()) return fail(env, "ERR_FIBER_STATE", "the file system operation is still in flight");
  op->release_buffer(env);
  const int64_t result = op->result();
  if (result < 0) return Napi::Number::New(env, static_cast<double>(result));
  switch (op->kind()) {
    case Kind::kPlain:
      return Napi::Number::New(env, static_cast<double>(result));
    case Kind::kStat: {
      if (info.Length() < 2 || !info[1].IsTypedArray()) return fail(env, "ERR_INVALID_ARG_TYPE", "expected a Float64Array");
      Napi::TypedArray arr = info[1].As<Napi::TypedArray>();
      if (arr.TypedArrayType() != napi_float64_array || arr.ElementLength() < 14) {
        return fail(env, "ERR_INVALID_ARG_TYPE", "expected a Float64Array of 14");
      }
      double* out = arr.As<Napi::Float64Array>().Data();
      const uv_stat_t& s = op->req()->statbuf;
      out[0] = static_cast<double>(s.st_dev);
      out[1] = static_cast<double>(s.st_mode);
      out[2] = static_cast<double>(s.st_nlink);
      out[3] = static_cast<double>(s.st_uid);
      out[4] = static_cast<double>(s.st_gid);
      out[5] = static_cast<double>(s.st_rdev);
      out[6] = static_cast<double>(s.st_blksize);
      out[7] = static_cast<double>(s.st_ino);
      out[8] = static_cast<double>(s.st_size);
      out[9] = static_cast<double>(s.st_blocks);
      out[10] = ms(s.st_atim);
      out[11] = ms(s.st_mtim);
      out[12] = ms(s.st_ctim);
      out[13] = ms(s.st_birthtim);
      return Napi::Number::New(env, 0);
    }
    case Kind::kScandir: {
      Napi::Array names = Napi::Array::New(env);
      Napi::Array types = info.Length() > 1 && info[1].IsArray() ? info[1].As<Napi::Array>() : Napi::Array();
      uv_dirent_t ent;
      uint32_t i = 0;
      while (uv_fs_scandir_next(op->req(), &ent) != UV_EOF) {
        napi_value name, type;
        napi_create_string_utf8(env, ent.name, NAPI_AUTO_LENGTH, &name);
        napi_set_element(env, names, i, name);  // raw: no abort if the environment is terminating
        if (!types.IsEmpty()) {
          napi_create_int32(env, ent.type, &type);
          napi_set_element(env, types, i, type);
        }
        ++i;
      }
      return names;
    }
    case Kind::kRealpath:
      return Napi::String::New(env, static_cast<const char*>(op->req()->ptr));
  }
  return Napi::Value();
}

// closeSync(fd): a synchronous close on the calling thread (File disposal outside fibers, and the close
// of a File the GC collected unclosed). Returns 0 or the negative libuv error.
Napi::Value CloseSync(const Napi::CallbackInfo& info) {
  uv_fs_t req;
  const int rc = uv_fs_close(loop_of(info.Env()), &req, i32(info, 0), nullptr);
  uv_fs_req_cleanup(&req);
  return Napi::Number::New(info.Env(), rc);
}

Napi::Value InFlight(const Napi::CallbackInfo& info) {
  Scheduler* scheduler = scheduler_of(info.Env());
  return Napi::Number::New(info.Env(), scheduler == nullptr ? 0 : static_cast<double>(io_in_flight(scheduler)));
}

}  // namespace

void register_fs(Napi::Env env, Napi::Object exports) {
  Napi::Object fs = Napi::Object::New(env);
  fs.Set("open", Napi::Function::New(env, Open, "open"));
  fs.Set("close", Napi::Function::New(env, Close, "close"));
  fs.Set("closeSync", Napi::Function::New(env, CloseSync, "closeSync"));
  fs.Set("read", Napi::Function::New(env, Read, "read"));
  fs.Set("write", Napi::Function::New(env, Write, "write"));
  fs.Set("stat", Napi::Function::New(env, Stat, "stat"));
  fs.Set("lstat", Napi::Function::New(env, Lstat, "lstat"));
  fs.Set("fstat", Napi::Function::New(env, Fstat, "fstat"));
  fs.Set("ftruncate", Napi::Function::New(env, Ftruncate, "ftruncate"));
  fs.Set("fsync", Napi::Function::New(env, Fsync, "fsync"));
  fs.Set("scandir", Napi::Function::New(env, Scandir, "scandir"));
  fs.Set("mkdir", Napi::Function::New(env, Mkdir, "mkdir"));
  fs.Set("rmdir", Napi::Function::New(env, Rmdir, "rmdir"));
  fs.Set("unlink", Napi::Function::New(env, Unlink, "unlink"));
  fs.Set("rename", Napi::Function::New(env, Rename, "rename"));
  fs.Set("copyfile", Napi::Function::New(env, Copyfile, "copyfile"));
  fs.Set("access", Napi::Function::New(env, Access, "access"));
  fs.Set("realpath", Napi::Function::New(env, Realpath, "realpath"));
  fs.Set("done", Napi::Function::New(env, Done, "done"));
  fs.Set("cancel", Napi::Function::New(env, Cancel, "cancel"));
  fs.Set("cancelled", Napi::Function::New(env, Cancelled, "cancelled"));
  fs.Set("result", Napi::Function::New(env, Result, "result"));
  fs.Set("inFlight", Napi::Function::New(env, InFlight, "inFlight"));
  exports.Set("fs", fs);
}

}  // namespace spindle
